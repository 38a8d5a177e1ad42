//! The caller check: who a call comes from (an API key, or the client certificate's
//! name), whether that caller may make it, and which WABAs it may see.
//!
//! The listener asks [`Gate::admit`] before a call reaches its service, from the path
//! alone: no credentials or an unknown key is UNAUTHENTICATED, a scope the caller lacks
//! PERMISSION_DENIED. The handlers then ask [`visible_waba`] and [`visible_number`] about
//! the ids in the request: a WABA outside the caller's list is NOT_FOUND, as one that
//! does not exist would be.

use super::peer::PeerIdentity;
use crate::callers::{Caller, CallerList, Callers, Scope};
use crate::numbers::Numbers;
use std::sync::Arc;
use tonic::Status;

/// Who may use server reflection (`--reflection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Reflection {
    /// Anyone who can reach the port, as health.
    #[default]
    Open,
    /// Any caller of the callers file.
    Authenticated,
    /// Not served.
    Off,
}

/// The caller a call was admitted for, in its request's extensions.
#[derive(Debug, Clone)]
pub struct Admitted(pub Arc<Caller>);

/// What a method asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Anyone: health checks.
    Nothing,
    /// Any known caller.
    Caller,
    Scope(Scope),
    /// A business-level RPC (the pre-verified pool): the scope, and every WABA.
    Business(Scope),
}

fn need(path: &str, reflection: Reflection) -> Need {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    match service {
        "grpc.health.v1.Health" => Need::Nothing,
        "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection" => {
            match reflection {
                Reflection::Open => Need::Nothing,
                Reflection::Authenticated | Reflection::Off => Need::Caller,
            }
        }
        "whatsapp.phonenumbers.v1.PhoneNumberService" => match method {
            "ListNumbers" | "GetStatus" => Need::Scope(Scope::Read),
            "WatchStatus" => Need::Scope(Scope::Watch),
            "ListPreverifiedNumbers" => Need::Business(Scope::Read),
            "AddPreverifiedNumber" | "DeletePreverifiedNumber" => Need::Business(Scope::Onboard),
            // Register, AddNumber, RequestVerificationCode, VerifyCode, Deregister,
            // SetTwoStepPin, RequestDisplayNameChange, and any added later.
            _ => Need::Scope(Scope::Write),
        },
        "whatsapp.phonenumbers.v1.CustomerService" => match method {
            "GetCustomer" | "ListCustomers" => Need::Scope(Scope::Read),
            _ => Need::Scope(Scope::Onboard),
        },
        _ => Need::Caller,
    }
}

/// Admits calls by the callers file; without one, every call.
#[derive(Debug, Clone)]
pub struct Gate {
    callers: Option<Arc<Callers>>,
    reflection: Reflection,
}

impl Gate {
    pub fn new(callers: Option<Arc<Callers>>, reflection: Reflection) -> Self {
        Self {
            callers,
            reflection,
        }
    }

    pub fn callers(&self) -> Option<&Arc<Callers>> {
        self.callers.as_ref()
    }

    /// Whether reflection is served at all.
    pub fn reflection(&self) -> Reflection {
        self.reflection
    }

    /// The caller of `request` if it may make this call (put in the request's
    /// extensions as [`Admitted`]); `Ok(None)` when there is no callers file, or the
    /// method is open to all and no caller was named.
    pub fn admit<B>(&self, request: &mut http::Request<B>) -> Result<Option<Arc<Caller>>, Refused> {
        let Some(callers) = &self.callers else {
            return Ok(None);
        };
        let need = need(request.uri().path(), self.reflection);
        let list = callers.current();
        if need == Need::Nothing {
            // Open to all: credentials that name nobody are not held against the call.
            let caller = identify(request, &list).ok().flatten();
            return Ok(caller.inspect(|c| admitted(request, c)));
        }
        let Some(caller) = identify(request, &list)? else {
            let why = if request.extensions().get::<PeerIdentity>().is_some() {
                "the client certificate names no caller, and no API key was sent"
            } else {
                "send an API key as \"authorization: Bearer <key>\" metadata"
            };
            return Err(Status::unauthenticated(why).into());
        };
        match need {
            Need::Scope(scope) | Need::Business(scope) if !caller.may(scope) => {
                let status = Status::permission_denied(format!(
                    "caller {} lacks the {} scope",
                    caller.name,
                    scope.name()
                ));
                return Err(Refused::by(status, caller));
            }
            Need::Business(_) => {
                if let Err(status) = business_level(Some(&caller)) {
                    return Err(Refused::by(status, caller));
                }
            }
            _ => {}
        }
        admitted(request, &caller);
        Ok(Some(caller))
    }
}

/// The caller `request` names: by its API key, else by its client certificate's names;
/// an unknown or malformed key is UNAUTHENTICATED.
fn identify<B>(
    request: &http::Request<B>,
    list: &CallerList,
) -> Result<Option<Arc<Caller>>, Refused> {
    let bearer = request.headers().get(http::header::AUTHORIZATION).map(|v| {
        v.to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|key| !key.is_empty())
    });
    Ok(match bearer {
        Some(Some(key)) => match list.by_key(key) {
            Some(caller) => Some(caller),
            None => return Err(Status::unauthenticated("unknown API key").into()),
        },
        Some(None) => {
            return Err(Status::unauthenticated(
                "the authorization metadata must be \"Bearer <API key>\"",
            )
            .into());
        }
        None => request
            .extensions()
            .get::<PeerIdentity>()
            .and_then(|peer| list.by_san(peer.sans.iter())),
    })
}

/// A call the check refused, and the caller it was, when known (PERMISSION_DENIED).
#[derive(Debug)]
pub struct Refused {
    pub status: Status,
    pub caller: Option<Arc<Caller>>,
}

impl Refused {
    fn by(status: Status, caller: Arc<Caller>) -> Self {
        Self {
            status,
            caller: Some(caller),
        }
    }
}

impl From<Status> for Refused {
    fn from(status: Status) -> Self {
        Self {
            status,
            caller: None,
        }
    }
}

fn admitted<B>(request: &mut http::Request<B>, caller: &Arc<Caller>) {
    request.extensions_mut().insert(Admitted(caller.clone()));
}

/// The caller a call was admitted for (`None` without a callers file).
pub fn caller_of<T>(request: &tonic::Request<T>) -> Option<Arc<Caller>> {
    request.extensions().get::<Admitted>().map(|a| a.0.clone())
}

/// The caller's name, for logs and metrics: `-` without a callers file.
pub fn name_of(caller: Option<&Arc<Caller>>) -> Arc<str> {
    static NOBODY: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| "-".into());
    caller.map_or_else(|| NOBODY.clone(), |c| c.name.clone())
}

/// PERMISSION_DENIED for a caller limited to WABAs: the call is the business's (its
/// pre-verified pool).
pub fn business_level(caller: Option<&Caller>) -> Result<(), Status> {
    match caller {
        Some(caller) if caller.wabas().is_some() => Err(Status::permission_denied(format!(
            "caller {} is limited to some WABAs: the business's pre-verified pool is not among them",
            caller.name
        ))),
        _ => Ok(()),
    }
}

/// NOT_FOUND unless the caller may see `waba_id` (as for a WABA that does not exist).
pub fn visible_waba(caller: Option<&Caller>, waba_id: &str) -> Result<(), Status> {
    match caller {
        Some(caller) if !caller.sees(waba_id) => {
            Err(Status::not_found(format!("WABA {waba_id} not found")))
        }
        _ => Ok(()),
    }
}

/// NOT_FOUND unless the number index places `phone_number_id` in one of the caller's
/// WABAs. Nothing is asked of Meta.
pub fn visible_number(
    caller: Option<&Caller>,
    numbers: &Numbers,
    phone_number_id: &str,
) -> Result<(), Status> {
    match caller {
        Some(caller) if caller.wabas().is_some() => {
            match numbers.reads().waba_of(phone_number_id) {
                Some(waba) if caller.sees(&waba) => Ok(()),
                _ => Err(Status::not_found(format!(
                    "phone number {phone_number_id} not found"
                ))),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_needs_its_scope() {
        let r = Reflection::Open;
        let phone = "/whatsapp.phonenumbers.v1.PhoneNumberService/";
        let customers = "/whatsapp.phonenumbers.v1.CustomerService/";
        for (method, expected) in [
            ("ListNumbers", Need::Scope(Scope::Read)),
            ("GetStatus", Need::Scope(Scope::Read)),
            ("WatchStatus", Need::Scope(Scope::Watch)),
            ("Register", Need::Scope(Scope::Write)),
            ("AddNumber", Need::Scope(Scope::Write)),
            ("RequestVerificationCode", Need::Scope(Scope::Write)),
            ("VerifyCode", Need::Scope(Scope::Write)),
            ("Deregister", Need::Scope(Scope::Write)),
            ("SetTwoStepPin", Need::Scope(Scope::Write)),
            ("RequestDisplayNameChange", Need::Scope(Scope::Write)),
            ("ListPreverifiedNumbers", Need::Business(Scope::Read)),
            ("AddPreverifiedNumber", Need::Business(Scope::Onboard)),
            ("DeletePreverifiedNumber", Need::Business(Scope::Onboard)),
        ] {
            assert_eq!(need(&format!("{phone}{method}"), r), expected, "{method}");
        }
        for (method, expected) in [
            ("GetCustomer", Need::Scope(Scope::Read)),
            ("ListCustomers", Need::Scope(Scope::Read)),
            ("OnboardCustomer", Need::Scope(Scope::Onboard)),
            ("RemoveCustomer", Need::Scope(Scope::Onboard)),
        ] {
            assert_eq!(
                need(&format!("{customers}{method}"), r),
                expected,
                "{method}"
            );
        }
        assert_eq!(need("/grpc.health.v1.Health/Check", r), Need::Nothing);
        let reflect = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
        assert_eq!(need(reflect, Reflection::Open), Need::Nothing);
        assert_eq!(need(reflect, Reflection::Authenticated), Need::Caller);
        assert_eq!(need("/other.Service/Method", r), Need::Caller);
    }
}
