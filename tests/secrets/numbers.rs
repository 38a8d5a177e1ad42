//! Every number RPC on the partner's token, each refused by a Meta that echoes what the
//! call carried, and the webhook verification handshake.

use super::{Running, Secrets, Seen, echo};
use crate::support::{
    APP_SECRET, Client, N1, NUMBER, TOKEN, VERSION, WABA, channel, fake_graph, get_status,
    list_numbers, number_json, numbers, ok, proof_for, read, register, with_token,
};
use std::time::Duration;
use tonic::Code;
use waba_numbers::pb::{
    AddNumberRequest, AddPreverifiedNumberRequest, DeletePreverifiedNumberRequest,
    DeregisterRequest, ListPreverifiedNumbersRequest, RequestDisplayNameChangeRequest,
    RequestVerificationCodeRequest, SetTwoStepPinRequest, VerifyCodeRequest,
};
use wiremock::Mock;
use wiremock::matchers::{any, body_string_contains, method, path, query_param};

const PIN: &str = "975310";
/// The two-step PIN SetTwoStepPin sets.
const NEW_PIN: &str = "864201";
/// The code VerifyCode checks.
const CODE: &str = "531642";
const VERIFY_TOKEN: &str = "verify-token-of-the-webhook-3b7e";
const WRONG_VERIFY_TOKEN: &str = "verify-token-guessed-wrong-0c11";
const BUSINESS: &str = "301000000000001";
const PREVERIFIED: &str = "301000000000777";
const NEW_NAME: &str = "Jaspers Fresh Market";

#[tokio::test]
async fn number_rpcs_keep_every_secret_out_of_logs_answers_and_metrics() {
    let proof = proof_for(TOKEN);
    // Every call carries the token, its proof and (hashed) the app secret; some more.
    let echo_with = |extra: &[&str]| {
        let mut carried = vec![TOKEN, proof.as_str(), APP_SECRET];
        carried.extend_from_slice(extra);
        echo(100, &carried)
    };
    let at =
        |verb: &str, node: &str| Mock::given(method(verb)).and(path(format!("/{VERSION}/{node}")));
    let graph = fake_graph([
        with_token(read(NUMBER), TOKEN).respond_with(ok(number_json(NUMBER))),
        read(N1).respond_with(echo_with(&[])),
        at("GET", &format!("{WABA}/phone_numbers")).respond_with(echo_with(&[])),
        at("POST", &format!("{WABA}/phone_numbers")).respond_with(echo_with(&[])),
        at("POST", &format!("{NUMBER}/register")).respond_with(echo_with(&[PIN])),
        at("POST", &format!("{NUMBER}/deregister")).respond_with(echo_with(&[])),
        at("POST", &format!("{NUMBER}/request_code")).respond_with(echo_with(&[])),
        at("POST", &format!("{NUMBER}/verify_code")).respond_with(echo_with(&[CODE])),
        at("POST", NUMBER)
            .and(query_param("new_display_name", NEW_NAME))
            .respond_with(echo_with(&[])),
        at("POST", NUMBER)
            .and(body_string_contains(NEW_PIN))
            .respond_with(echo_with(&[NEW_PIN])),
        at("POST", &format!("{BUSINESS}/preverified_numbers")).respond_with(echo_with(&[])),
        at("GET", &format!("{BUSINESS}/preverified_numbers")).respond_with(echo_with(&[])),
        at("DELETE", PREVERIFIED).respond_with(echo_with(&[])),
        // Whatever else it asks (a read before a write, say) is refused the same way.
        Mock::given(any()).respond_with(echo_with(&[])),
    ])
    .await;
    let service = Running::start(
        &graph.uri(),
        &[],
        &[("WABA_WEBHOOK_VERIFY_TOKEN", VERIFY_TOKEN)],
    )
    .await;
    let mut client = Client::new(channel(service.grpc).await);
    let mut seen = Seen::default();

    let listed = client.list_numbers(list_numbers(WABA, 0, "")).await;
    assert!(listed.is_err());
    seen.answer("ListNumbers", listed);
    let bad_page = client.list_numbers(list_numbers(WABA, 0, "x.y")).await;
    assert_eq!(bad_page.as_ref().unwrap_err().code(), Code::InvalidArgument);
    seen.answer("ListNumbers with a bad page token", bad_page);
    let read_ok = client.get_status(get_status(NUMBER)).await;
    assert!(read_ok.is_ok(), "{read_ok:?}");
    seen.answer("GetStatus", read_ok);
    seen.answer("GetStatus refused", client.get_status(get_status(N1)).await);

    let registered = client.register(register(NUMBER, PIN)).await;
    assert!(registered.is_err());
    seen.answer("Register", registered);
    let bad_pin = register(NUMBER, &format!("{PIN}9"));
    seen.answer("Register with a bad PIN", client.register(bad_pin).await);
    let add = AddNumberRequest {
        waba_id: WABA.into(),
        country_code: "1".into(),
        phone_number: "5550100999".into(),
        verified_name: "Acme".into(),
        ..AddNumberRequest::default()
    };
    seen.answer("AddNumber", client.add_number(add).await);
    let request_code = RequestVerificationCodeRequest {
        phone_number_id: NUMBER.into(),
        ..RequestVerificationCodeRequest::default()
    };
    let answer = client.request_verification_code(request_code).await;
    seen.answer("RequestVerificationCode", answer);
    let verify = |code: &str| VerifyCodeRequest {
        phone_number_id: NUMBER.into(),
        code: code.into(),
    };
    let verified = client.verify_code(verify(CODE)).await;
    assert!(verified.is_err());
    seen.answer("VerifyCode", verified);
    let bad_code = client.verify_code(verify(&format!("{CODE}7"))).await;
    seen.answer("VerifyCode with a bad code", bad_code);
    let deregister = DeregisterRequest {
        phone_number_id: NUMBER.into(),
        ..DeregisterRequest::default()
    };
    seen.answer("Deregister", client.deregister(deregister).await);
    let set_pin = |pin: &str| SetTwoStepPinRequest {
        phone_number_id: NUMBER.into(),
        pin: pin.into(),
        request_id: String::new(),
    };
    let pin_set = client.set_two_step_pin(set_pin(NEW_PIN)).await;
    assert!(pin_set.is_err());
    seen.answer("SetTwoStepPin", pin_set);
    let bad_new_pin = client
        .set_two_step_pin(set_pin(&format!("{NEW_PIN}1")))
        .await;
    seen.answer("SetTwoStepPin with a bad PIN", bad_new_pin);
    let rename = RequestDisplayNameChangeRequest {
        phone_number_id: NUMBER.into(),
        display_name: NEW_NAME.into(),
        request_id: String::new(),
    };
    let renamed = client.request_display_name_change(rename).await;
    seen.answer("RequestDisplayNameChange", renamed);

    let add_preverified = AddPreverifiedNumberRequest {
        business_id: BUSINESS.into(),
        phone_number: "15550100777".into(),
    };
    let added = client.add_preverified_number(add_preverified).await;
    seen.answer("AddPreverifiedNumber", added);
    let list_preverified = ListPreverifiedNumbersRequest {
        business_id: BUSINESS.into(),
        ..ListPreverifiedNumbersRequest::default()
    };
    let pool = client.list_preverified_numbers(list_preverified).await;
    seen.answer("ListPreverifiedNumbers", pool);
    let delete = DeletePreverifiedNumberRequest {
        preverified_id: PREVERIFIED.into(),
    };
    let deleted = client.delete_preverified_number(delete).await;
    seen.answer("DeletePreverifiedNumber", deleted);

    for (rpc, id) in [("WatchStatus", NUMBER), ("WatchStatus refused", N1)] {
        match client.watch_status(numbers(&[id])).await {
            Err(status) => seen.status(rpc, &status),
            Ok(stream) => {
                let mut stream = stream.into_inner();
                let first = tokio::time::timeout(Duration::from_secs(10), stream.message());
                match first.await {
                    Ok(Ok(event)) => seen.push(rpc, format!("{event:?}")),
                    Ok(Err(status)) => seen.status(rpc, &status),
                    Err(_) => seen.push(rpc, "no event within 10 s"),
                }
            }
        }
    }

    // Meta's webhook verification handshake: refused with a wrong token, then answered.
    let refused = handshake(&service, WRONG_VERIFY_TOKEN).await.unwrap();
    assert_eq!(refused.status(), 403);
    seen.push("the refused handshake", refused.text().await.unwrap());
    let answered = handshake(&service, VERIFY_TOKEN).await.unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(answered.text().await.unwrap(), "challenge-1158");

    let metrics = service.metrics().await;
    assert!(metrics.contains("waba_"), "{metrics}");
    let logs = service.stop().await;
    let mut secrets = Secrets::default();
    secrets.add("partner token", TOKEN);
    secrets.add("partner token's appsecret_proof", &proof);
    secrets.add("app secret", APP_SECRET);
    secrets.add("Register's PIN", PIN);
    secrets.add("SetTwoStepPin's PIN", NEW_PIN);
    secrets.add("verification code", CODE);
    secrets.add("webhook verify token", VERIFY_TOKEN);
    secrets.add("wrong webhook verify token", WRONG_VERIFY_TOKEN);
    secrets.assert_none_in(&seen);
    secrets.assert_no_secret(&metrics, "the metrics");
    secrets.assert_no_secret(&logs, "the logs");
    // Redaction keeps what is not secret: Meta's refusal still reads.
    let answered = String::from_utf8_lossy(
        &seen
            .0
            .iter()
            .flat_map(|(_, b)| b.clone())
            .collect::<Vec<_>>(),
    )
    .into_owned();
    assert!(answered.contains("[redacted]"), "{answered}");
    // Every mocked endpoint was asked: each RPC reached Meta and had its secrets echoed.
    let asked = graph.received_requests().await.unwrap();
    for needle in [
        "register",
        "deregister",
        "request_code",
        "verify_code",
        "preverified_numbers",
    ] {
        assert!(
            asked.iter().any(|r| r.url.path().ends_with(needle)),
            "{needle} never asked"
        );
    }
}

/// `GET /webhooks/whatsapp` as Meta's verification handshake sends it, with `token`.
async fn handshake(service: &Running, token: &str) -> reqwest::Result<reqwest::Response> {
    let query = [
        ("hub.mode", "subscribe"),
        ("hub.verify_token", token),
        ("hub.challenge", "challenge-1158"),
    ];
    let url = format!("http://{}/webhooks/whatsapp", service.http);
    waba_numbers::tls::install_provider();
    reqwest::Client::new().get(url).query(&query).send().await
}
