//! Pure pieces of talking to FreeSWITCH, unit-tested without it: dial
//! strings, originate variable lists, and reading leg progress out of event
//! headers.
//!
//! House rule 7: only validated tokens (digits, `[A-Za-z0-9_.+-]` words,
//! uuids, an admin's template) ever reach a dial string, the customer's
//! leg's own variables among them (`{name=value,…}`); everything else (a
//! CRM's `X-` headers, any value that is not such a token) travels as an
//! originate variable, one `switch_event_t` header each, so `,` `}` `'`
//! `^^` `${}` in a value stay text.

use std::time::Duration;

use uuid::Uuid;

use crate::core::config::{is_phone, is_word};
use crate::switch::{AgentLeg, CustomerLeg, Failure, LegEvent, LegReport, Route};

/// Channel variable tagging our channels with their call.
pub(crate) const VAR_CALL: &str = "zorio_c2c_call_uuid";
/// Channel variable naming the leg (`A` or `B`).
pub(crate) const VAR_LEG: &str = "zorio_c2c_leg";
/// Channel variable numbering B-leg attempts (1, 2, …).
pub(crate) const VAR_ATTEMPT: &str = "zorio_c2c_attempt";
/// [`VAR_ATTEMPT`] as an event's header (no name built each time).
const VAR_ATTEMPT_HEADER: &str = "variable_zorio_c2c_attempt";

/// Why a leg could not even be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused(pub String);

fn word(s: &str, what: &str) -> Result<(), Refused> {
    if is_word(s) {
        Ok(())
    } else {
        Err(Refused(format!("{what} {s:?} is not [A-Za-z0-9_.-]+")))
    }
}

fn number(s: &str) -> Result<(), Refused> {
    if is_phone(s, 1, 32) {
        Ok(())
    } else {
        Err(Refused(format!("number {s:?} is not digits or +")))
    }
}

/// `user/<ext>@<domain>`: the directory's own dial-string rings the agent.
pub(crate) fn agent_dial_string(extension: &str, domain: &str) -> Result<String, Refused> {
    number(extension)?;
    word(domain, "domain")?;
    Ok(format!("user/{extension}@{domain}"))
}

/// Where one B-leg attempt goes.
fn customer_dial_string(route: &Route, number_: &str) -> Result<String, Refused> {
    number(number_)?;
    match route {
        Route::Gateway { gateway } => {
            word(gateway, "gateway")?;
            Ok(format!("sofia/gateway/{gateway}/{number_}"))
        }
        Route::DialString { template } => {
            if !template.contains("${number}") {
                return Err(Refused("dial-string template lacks ${number}".into()));
            }
            Ok(template.replace("${number}", number_))
        }
        Route::Dialplan { dialplan, context } => {
            word(dialplan, "dialplan")?;
            word(context, "context")?;
            Ok(format!("loopback/{number_}/{context}/{dialplan}"))
        }
    }
}

/// Originate variables of the agent's leg.
pub(crate) fn agent_vars(leg: &AgentLeg) -> Vec<(String, String)> {
    let mut v = vec![
        ("origination_uuid", leg.leg_uuid.to_string()),
        ("origination_caller_id_name", leg.caller_id_name.clone()),
        ("origination_caller_id_number", leg.caller_id_number.clone()),
        ("call_timeout", timeout_secs(leg.timeout).to_string()),
        ("hangup_after_bridge", "true".to_string()),
        (VAR_CALL, leg.call_uuid.to_string()),
        (VAR_LEG, "A".to_string()),
    ];
    if leg.auto_answer {
        v.push(("sip_auto_answer", "true".to_string()));
    }
    v.into_iter().map(|(k, val)| (k.to_string(), val)).collect()
}

/// Originate variables of one B-leg attempt; custom headers become `sip_h_X-<key>`.
pub(crate) fn customer_vars(leg: &CustomerLeg) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("origination_uuid", leg.leg_uuid.to_string()),
        ("origination_caller_id_number", leg.caller_id.clone()),
        ("origination_caller_id_name", leg.caller_id.clone()),
        ("call_timeout", timeout_secs(leg.timeout).to_string()),
        // Dialled by `bridge` from the agent's session: how long it rings
        // before any early media. A carrier's 183 with SDP is bridged to
        // the agent at once, as FreeSWITCH's own `&bridge` does (no relay
        // thread, no transcoding); the ring timeout then is ours
        // (src/ffi/fs_switch.rs).
        ("originate_timeout", timeout_secs(leg.timeout).to_string()),
        ("hangup_after_bridge", "true".to_string()),
        (VAR_CALL, leg.call_uuid.to_string()),
        (VAR_LEG, "B".to_string()),
        (VAR_ATTEMPT, leg.attempt.to_string()),
    ]
    .into_iter()
    .map(|(k, val)| (k.to_string(), val))
    .collect();
    if let Some((id, name)) = &leg.trunk {
        v.push((crate::switch::TRUNK_VAR.into(), id.to_string()));
        v.push(("zorio_c2c_trunk_name".into(), name.clone()));
    }
    if let Route::Dialplan { .. } = leg.route {
        // The B-leg is loopback-a and the dialplan's bridge hangs off
        // loopback-b. Left alone, mod_loopback "bows out" once both are
        // bridged and media flows: it bridges the agent straight to the
        // dialplan's channel and hangs up loopback-a, i.e. our B-leg, so we
        // took the call for ended and hung up the agent mid-conversation.
        v.push(("loopback_bowout".into(), "false".into()));
    }
    for (key, value) in &leg.headers {
        v.push((format!("sip_h_X-{key}"), value.clone()));
    }
    v
}

/// One B-leg attempt as the agent's `bridge` dials it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CustomerDial {
    /// Where the attempt goes ([`customer_dial_string`]), for the log.
    pub target: String,
    /// `target`, led by `{name=value,…}` with the attempt's variables whose
    /// values are our own tokens (uuids, numbers, words: nothing FreeSWITCH
    /// would read as syntax).
    pub dial: String,
    /// The rest (the CRM's `X-` headers, any value that is not such a
    /// token): exported from the agent's channel (src/shim/dial.c), never
    /// parsed out of a dial string. Empty for most calls, so that the
    /// agent's channel (whose every event and every `execute_on` copies all
    /// its variables) carries no export.
    pub exports: Vec<(String, String)>,
}

/// A value that may stand in a dial string's `{…}`: `[A-Za-z0-9_.+-]+`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'))
}

/// The attempt's dial string and variables ([`customer_vars`]): ours in the
/// dial string's `{…}` when `target` starts with a plain endpoint (an
/// admin's template that brings its own `{…}`, `[…]`, `<…>` or several
/// endpoints gets them all as exports), a CRM's headers always exported.
pub(crate) fn customer_dial(leg: &CustomerLeg) -> Result<CustomerDial, Refused> {
    let target = customer_dial_string(&leg.route, &leg.number)?;
    let plain = target.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !target.contains(":_:")
        && !target.contains('|');
    let (braced, exports): (Vec<_>, Vec<_>) =
        customer_vars(leg).into_iter().partition(|(name, value)| {
            plain && !name.starts_with("sip_h_") && is_word(name) && is_token(value)
        });
    let dial = if braced.is_empty() {
        target.clone()
    } else {
        let list: Vec<String> = braced.iter().map(|(n, v)| format!("{n}={v}")).collect();
        format!("{{{}}}{target}", list.join(","))
    };
    Ok(CustomerDial {
        target,
        dial,
        exports,
    })
}

/// A variable FreeSWITCH's event headers would not carry as given: a name
/// with `[` (array index) or a value starting `ARRAY::` (split into several).
pub(crate) fn unsafe_var(name: &str, value: &str) -> bool {
    name.contains('[') || value.starts_with("ARRAY::") || name.is_empty()
}

/// Whole seconds for FreeSWITCH, rounded up, at least 1.
pub(crate) fn timeout_secs(d: Duration) -> u32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.clamp(1, u64::from(u32::MAX)) as u32
}

/// A SIP status such as `503` (from `sip_term_status`), if it is one.
pub(crate) fn sip_code(s: &str) -> Option<u16> {
    s.trim()
        .parse::<u16>()
        .ok()
        .filter(|c| (100..700).contains(c))
}

/// Channel events we bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelEvent {
    Progress,
    Answer,
    /// CHANNEL_BRIDGE: the channel is the bridge's originator.
    Bridge,
    HangupComplete,
}

/// Whether the party on a leg ended it, from `sip_hangup_disposition`:
/// `recv_bye` / `recv_cancel` / `recv_refuse` (the phone or carrier did),
/// `send_*` (the switch did); `None` when absent or unknown.
pub(crate) fn by_peer(disposition: Option<&str>) -> Option<bool> {
    match disposition?.trim() {
        d if d.starts_with("recv_") => Some(true),
        d if d.starts_with("send_") => Some(false),
        _ => None,
    }
}

/// Where a transfer sent a channel, from its `transfer_source`
/// (`<epoch>:<uuid>:bl_xfer:<ext>/<context>/<dialplan>`, or
/// `<epoch>:<uuid>:uuid_br:<other uuid>` after a bridge): `None` while it
/// is still the bridge with `from` (ours).
pub(crate) fn transfer_destination(source: &str, from: Uuid) -> Option<String> {
    let mut parts = source.splitn(4, ':');
    let (_, _, kind, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    match kind {
        "bl_xfer" => rest.split('/').next().map(str::to_string),
        "uuid_br" | "att_xfer" if Uuid::parse_str(rest.trim()).ok() != Some(from) => {
            Some(rest.trim().to_string())
        }
        _ => None,
    }
}

/// The Application-UUID of attempt `attempt` at `leg`, dialled from the
/// agent's session (its CHANNEL_EXECUTE_COMPLETE carries it back).
pub(crate) fn dial_app_uuid(leg: Uuid, attempt: u32) -> String {
    format!("zorio_c2c:{leg}:{attempt}")
}

/// The (leg, attempt) an Application-UUID of [`dial_app_uuid`] names.
pub(crate) fn dial_of(app_uuid: &str) -> Option<(Uuid, u32)> {
    let mut parts = app_uuid.strip_prefix("zorio_c2c:")?.split(':');
    let leg = Uuid::parse_str(parts.next()?).ok()?;
    let attempt = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((leg, attempt))
}

/// The report an event of our leg `leg_uuid` makes, reading headers by name
/// (the attempt's only when `attempts`: a customer's leg); `None` when one
/// it needs is missing.
pub(crate) fn leg_report(
    kind: ChannelEvent,
    leg_uuid: Uuid,
    attempts: bool,
    header: impl Fn(&str) -> Option<String>,
) -> Option<LegReport> {
    let attempt = attempts
        .then(|| header(VAR_ATTEMPT_HEADER).and_then(|a| a.trim().parse().ok()))
        .flatten();
    let event = match kind {
        ChannelEvent::Progress => LegEvent::Ringing,
        ChannelEvent::Answer => LegEvent::Answered,
        ChannelEvent::Bridge => LegEvent::Bridged {
            partner: Uuid::parse_str(header("Other-Leg-Unique-ID")?.trim()).ok()?,
            destination: header("Other-Leg-Destination-Number").filter(|d| !d.is_empty()),
        },
        ChannelEvent::HangupComplete => LegEvent::HungUp(Failure {
            cause: header("Hangup-Cause")
                .or_else(|| header("variable_hangup_cause"))
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "NORMAL_CLEARING".to_string()),
            sip_code: header("variable_sip_term_status")
                .as_deref()
                .and_then(sip_code),
            by_peer: by_peer(header("variable_sip_hangup_disposition").as_deref()),
            at_us: header("Caller-Channel-Hangup-Time")
                .and_then(|t| t.trim().parse::<u64>().ok())
                .filter(|t| *t > 0),
            seq: None,
            record_cause: header("variable_record_completion_cause").filter(|c| !c.is_empty()),
        }),
    };
    Some(LegReport {
        leg_uuid,
        attempt,
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_header_names_are_the_variables_as_events_carry_them() {
        assert_eq!(VAR_ATTEMPT_HEADER, format!("variable_{VAR_ATTEMPT}"));
    }

    fn customer(route: Route, headers: Vec<(&str, &str)>) -> CustomerLeg {
        CustomerLeg {
            call_uuid: Uuid::nil(),
            leg_uuid: Uuid::from_u128(7),
            agent_leg_uuid: Uuid::from_u128(6),
            number: "0987654321".into(),
            route,
            trunk: Some((4, "POC".into())),
            caller_id: "0900000020".into(),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            timeout: Duration::from_millis(1500),
            attempt: 2,
            ringback: None,
        }
    }

    #[test]
    fn dial_strings_per_route() {
        let gw = Route::Gateway {
            gateway: "poc".into(),
        };
        assert_eq!(
            customer_dial_string(&gw, "0987654321").unwrap(),
            "sofia/gateway/poc/0987654321"
        );
        let tpl = Route::DialString {
            template: "sofia/external/${number}@192.0.2.10".into(),
        };
        assert_eq!(
            customer_dial_string(&tpl, "+3312").unwrap(),
            "sofia/external/+3312@192.0.2.10"
        );
        let dp = Route::Dialplan {
            dialplan: "XML".into(),
            context: "default".into(),
        };
        assert_eq!(
            customer_dial_string(&dp, "0987654321").unwrap(),
            "loopback/0987654321/default/XML"
        );
        assert_eq!(
            agent_dial_string("1001", "pbx.example.com").unwrap(),
            "user/1001@pbx.example.com"
        );
    }

    #[test]
    fn hostile_tokens_never_reach_a_dial_string() {
        let gw = |g: &str| Route::Gateway { gateway: g.into() };
        assert!(customer_dial_string(&gw("poc"), "0987,sofia/x").is_err());
        assert!(customer_dial_string(&gw("poc"), "{a=b}1").is_err());
        assert!(customer_dial_string(&gw("p}oc"), "0987").is_err());
        assert!(customer_dial_string(&gw("a,b"), "0987").is_err());
        let dp = Route::Dialplan {
            dialplan: "XML".into(),
            context: "x/y".into(),
        };
        assert!(customer_dial_string(&dp, "0987").is_err());
        assert!(agent_dial_string("1001@evil", "d").is_err());
        assert!(agent_dial_string("1001", "d,user/2").is_err());
        assert!(agent_dial_string("1001", "${x}").is_err());
    }

    #[test]
    fn hostile_values_travel_as_variables_verbatim() {
        let hostile = "a,b}c[d]'e^^:f ${g} {origination_uuid=x}";
        let leg = customer(
            Route::Gateway {
                gateway: "poc".into(),
            },
            vec![("CRM-Lead-Id", hostile)],
        );
        let dial = customer_dial(&leg).unwrap();
        assert!(!dial.dial.contains(hostile) && !dial.dial.contains("X-CRM"));
        assert_eq!(
            dial.exports,
            vec![("sip_h_X-CRM-Lead-Id".to_string(), hostile.to_string())]
        );
        let vars: HashMap<_, _> = customer_vars(&leg).into_iter().collect();
        assert_eq!(vars["sip_h_X-CRM-Lead-Id"], hostile);
        assert_eq!(vars["origination_uuid"], Uuid::from_u128(7).to_string());
        assert_eq!(vars["origination_caller_id_number"], "0900000020");
        assert_eq!(vars[VAR_LEG], "B");
        assert_eq!(vars[VAR_ATTEMPT], "2");
        assert_eq!(vars["call_timeout"], "2");
        assert_eq!(vars["originate_timeout"], "2");
        assert!(
            !vars.contains_key("bridge_early_media"),
            "bridged on early media, as &bridge"
        );
        assert!(!unsafe_var("sip_h_X-CRM-Lead-Id", hostile));
        assert!(unsafe_var("sip_h_X-a", "ARRAY::x|:y"));
        assert!(unsafe_var("a[1]", "x"));
    }

    #[test]
    fn our_tokens_lead_the_dial_string_the_rest_is_exported() {
        let gw = Route::Gateway {
            gateway: "poc".into(),
        };
        let mut leg = customer(gw, vec![("CRM-Lead-Id", "LEAD-42")]);
        let d = customer_dial(&leg).unwrap();
        assert_eq!(d.target, "sofia/gateway/poc/0987654321");
        let braced = d
            .dial
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix(&format!("}}{}", d.target)))
            .expect("{vars}target");
        let braced: HashMap<&str, &str> = braced
            .split(',')
            .map(|kv| kv.split_once('=').unwrap())
            .collect();
        // Every variable of the attempt but the CRM's header, each once.
        let all = customer_vars(&leg);
        assert_eq!(braced.len() + d.exports.len(), all.len());
        for (name, value) in &all {
            if name.starts_with("sip_h_") {
                assert!(d.exports.contains(&(name.clone(), value.clone())));
            } else {
                assert_eq!(braced.get(name.as_str()), Some(&value.as_str()), "{name}");
            }
        }
        assert_eq!(braced["origination_uuid"], Uuid::from_u128(7).to_string());
        // A trunk name that is not a word is exported, not braced.
        leg.trunk = Some((4, "Main trunk, EU".into()));
        let d = customer_dial(&leg).unwrap();
        assert!(!d.dial.contains("Main"));
        assert!(d
            .exports
            .contains(&("zorio_c2c_trunk_name".into(), "Main trunk, EU".into())));
        // An admin's template with its own syntax up front: all exported.
        for template in [
            "{sip_cid_type=pid}sofia/external/${number}@192.0.2.10",
            "[leg_timeout=5]sofia/external/${number}@192.0.2.10",
            "sofia/a/${number}@x:_:sofia/b/${number}@y",
        ] {
            leg.route = Route::DialString {
                template: template.into(),
            };
            let d = customer_dial(&leg).unwrap();
            assert_eq!(d.dial, d.target, "{template}");
            assert_eq!(d.exports.len(), customer_vars(&leg).len());
        }
    }

    #[test]
    fn dialplan_legs_keep_their_loopback_channel() {
        let vars = |route| -> HashMap<String, String> {
            customer_vars(&customer(route, vec![]))
                .into_iter()
                .collect()
        };
        let dp = vars(Route::Dialplan {
            dialplan: "XML".into(),
            context: "default".into(),
        });
        assert_eq!(dp["loopback_bowout"], "false");
        let gw = vars(Route::Gateway {
            gateway: "poc".into(),
        });
        assert!(!gw.contains_key("loopback_bowout"));
    }

    #[test]
    fn agent_vars_tag_the_leg_and_ask_auto_answer_only_when_told() {
        let mut leg = AgentLeg {
            call_uuid: Uuid::from_u128(1),
            leg_uuid: Uuid::from_u128(2),
            extension: "1001".into(),
            domain: "d".into(),
            timeout: Duration::from_secs(30),
            caller_id_name: "Click-to-call".into(),
            caller_id_number: "0987654321".into(),
            auto_answer: false,
        };
        let names = |l: &AgentLeg| agent_vars(l).into_iter().map(|v| v.0).collect::<Vec<_>>();
        assert!(!names(&leg).contains(&"sip_auto_answer".to_string()));
        leg.auto_answer = true;
        let vars: HashMap<_, _> = agent_vars(&leg).into_iter().collect();
        assert_eq!(vars["sip_auto_answer"], "true");
        assert_eq!(vars[VAR_LEG], "A");
        assert_eq!(vars[VAR_CALL], Uuid::from_u128(1).to_string());
        assert_eq!(vars["origination_uuid"], Uuid::from_u128(2).to_string());
        assert_eq!(vars["call_timeout"], "30");
    }

    #[test]
    fn timeouts_round_up_to_whole_seconds() {
        assert_eq!(timeout_secs(Duration::from_millis(0)), 1);
        assert_eq!(timeout_secs(Duration::from_millis(300)), 1);
        assert_eq!(timeout_secs(Duration::from_millis(2001)), 3);
        assert_eq!(timeout_secs(Duration::from_secs(60)), 60);
    }

    #[test]
    fn a_customer_legs_reports_say_their_attempt_and_an_agents_none() {
        let leg = Uuid::from_u128(9);
        let mut h: HashMap<String, String> = HashMap::new();
        h.insert(format!("variable_{VAR_ATTEMPT}"), "2".into());
        h.insert("Hangup-Cause".into(), "NORMAL_TEMPORARY_FAILURE".into());
        h.insert("variable_sip_term_status".into(), "503".into());
        h.insert(
            "variable_record_completion_cause".into(),
            "uri-failure".into(),
        );
        let get = |h: &HashMap<String, String>| {
            let h = h.clone();
            move |n: &str| h.get(n).cloned()
        };
        assert_eq!(
            leg_report(ChannelEvent::HangupComplete, leg, true, get(&h)),
            Some(LegReport {
                leg_uuid: leg,
                attempt: Some(2),
                event: LegEvent::HungUp(Failure {
                    cause: "NORMAL_TEMPORARY_FAILURE".into(),
                    sip_code: Some(503),
                    record_cause: Some("uri-failure".into()),
                    ..Default::default()
                })
            })
        );
        let agent = leg_report(ChannelEvent::Progress, leg, false, get(&h));
        assert_eq!(
            agent,
            Some(LegReport {
                leg_uuid: leg,
                attempt: None,
                event: LegEvent::Ringing
            })
        );
        h.insert(format!("variable_{VAR_ATTEMPT}"), "two".into());
        let unnumbered = leg_report(ChannelEvent::Answer, leg, true, get(&h));
        assert_eq!(unnumbered.and_then(|r| r.attempt), None);
    }

    #[test]
    fn a_bridge_without_its_partner_makes_no_report() {
        let leg = Uuid::from_u128(5);
        let none = |_: &str| None;
        assert_eq!(leg_report(ChannelEvent::Bridge, leg, false, none), None);
        let bad = |n: &str| (n == "Other-Leg-Unique-ID").then(|| "not-a-uuid".to_string());
        assert_eq!(leg_report(ChannelEvent::Bridge, leg, false, bad), None);
    }

    #[test]
    fn hangup_dispositions_and_times_are_read() {
        assert_eq!(by_peer(Some("recv_bye")), Some(true));
        assert_eq!(by_peer(Some("recv_cancel")), Some(true));
        assert_eq!(by_peer(Some("send_bye")), Some(false));
        assert_eq!(by_peer(Some("")), None);
        assert_eq!(by_peer(None), None);
        let leg = Uuid::from_u128(3);
        let h = move |n: &str| match n {
            "variable_sip_hangup_disposition" => Some("recv_bye".to_string()),
            "Caller-Channel-Hangup-Time" => Some("1764000000123456".to_string()),
            "Other-Leg-Unique-ID" => Some(Uuid::from_u128(4).to_string()),
            "Other-Leg-Destination-Number" => Some("4412345".to_string()),
            _ => None,
        };
        match leg_report(ChannelEvent::HangupComplete, leg, false, h).map(|r| r.event) {
            Some(LegEvent::HungUp(f)) => {
                assert_eq!(f.by_peer, Some(true));
                assert_eq!(f.at_us, Some(1_764_000_000_123_456));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            leg_report(ChannelEvent::Bridge, leg, false, h).map(|r| r.event),
            Some(LegEvent::Bridged {
                partner: Uuid::from_u128(4),
                destination: Some("4412345".into())
            })
        );
    }

    #[test]
    fn transfers_are_told_apart_from_our_own_bridge() {
        let a = Uuid::from_u128(1);
        let ours = format!("1764000000:{}:uuid_br:{a}", Uuid::from_u128(2));
        assert_eq!(transfer_destination(&ours, a), None);
        let other = Uuid::from_u128(8);
        let moved = format!("1764000000:{}:uuid_br:{other}", Uuid::from_u128(2));
        assert_eq!(transfer_destination(&moved, a), Some(other.to_string()));
        let blind = format!(
            "1764000001:{}:bl_xfer:0977777777/default/XML",
            Uuid::from_u128(2)
        );
        assert_eq!(transfer_destination(&blind, a), Some("0977777777".into()));
        assert_eq!(transfer_destination("garbage", a), None);
    }

    #[test]
    fn dial_attempts_are_named_and_read_back() {
        let leg = Uuid::from_u128(7);
        assert_eq!(dial_of(&dial_app_uuid(leg, 3)), Some((leg, 3)));
        assert_eq!(dial_of(&leg.to_string()), None);
        assert_eq!(dial_of(&format!("zorio_c2c:{leg}:x")), None);
        assert_eq!(dial_of(&format!("zorio_c2c:{leg}:1:2")), None);
        assert_eq!(dial_of("zorio_c2c:nope:1"), None);
    }

    #[test]
    fn sip_codes_are_parsed_strictly() {
        assert_eq!(sip_code("503"), Some(503));
        assert_eq!(sip_code(" 200 "), Some(200));
        assert_eq!(sip_code("99"), None);
        assert_eq!(sip_code("abc"), None);
        assert_eq!(sip_code(""), None);
    }
}
