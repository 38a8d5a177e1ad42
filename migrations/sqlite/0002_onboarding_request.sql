-- The request_id of the onboarding whose code gave the current token: a retry under it
-- resumes rather than exchanging a code that works only once (src/customers/).
ALTER TABLE customers ADD COLUMN onboarding_request_id TEXT;
