//! Which number the customer sees, and which rule chose it.
//!
//! A request's `caller_id` always wins. Without one, `<caller-ids
//! strategy>` decides: `fixed` is the contract's chain (the extension's
//! outbound caller id, else the extension); `local-presence` takes the pool
//! number (of the chosen trunk, when one is known) sharing the longest
//! leading digits with the customer's number, ties broken by the pool's
//! order, else the chain; `sticky` takes the number this customer was last
//! called from (remembered in the durable store for `sticky-ttl`), so a
//! callback reaches the same line, else local presence.

use super::config::{CallerIdStrategy, Config, PoolNumber};
use super::request::ClickToCallRequest;
use crate::switch::Extension;

/// A chosen caller id and the rule that chose it (the CDR's `caller_id_rule`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub number: String,
    /// `request`, `outbound_caller_id`, `extension`, `local_presence` or `sticky`.
    pub rule: &'static str,
}

/// The contract's chain: the request's `caller_id`, else the extension's
/// `outbound_caller_id_number`, else the extension itself.
fn fixed(req: &ClickToCallRequest, ext: &Extension) -> Chosen {
    if let Some(n) = &req.caller_id {
        return Chosen {
            number: n.clone(),
            rule: "request",
        };
    }
    match ext
        .outbound_caller_id_number
        .clone()
        .filter(|n| super::config::is_phone(n, 1, 32))
    {
        Some(number) => Chosen {
            number,
            rule: "outbound_caller_id",
        },
        None => Chosen {
            number: req.from_extension.clone(),
            rule: "extension",
        },
    }
}

/// The caller id of a call about to be placed on `trunk_id` (the first
/// trunk of its route, when it has one); `sticky` is the number this
/// customer was last called from, when the store remembers one.
pub fn choose(
    config: &Config,
    req: &ClickToCallRequest,
    ext: &Extension,
    trunk_id: Option<i64>,
    sticky: Option<&str>,
) -> Chosen {
    if req.caller_id.is_some() || config.caller_id_strategy == CallerIdStrategy::Fixed {
        return fixed(req, ext);
    }
    let in_pool = |n: &str| config.caller_ids.iter().any(|p| p.number == n);
    if config.caller_id_strategy == CallerIdStrategy::Sticky {
        if let Some(n) = sticky.filter(|n| in_pool(n)) {
            return Chosen {
                number: n.to_string(),
                rule: "sticky",
            };
        }
    }
    match local_presence(&config.caller_ids, trunk_id, &req.to_phone) {
        Some(number) => Chosen {
            number,
            rule: "local_presence",
        },
        None => fixed(req, ext),
    }
}

/// The pool number (of `trunk_id`'s, when known) sharing the most leading
/// digits with `to_phone`; the first of equals; `None` when none shares one.
pub fn local_presence(
    pool: &[PoolNumber],
    trunk_id: Option<i64>,
    to_phone: &str,
) -> Option<String> {
    let mut best: Option<(usize, &PoolNumber)> = None;
    for p in pool
        .iter()
        .filter(|p| trunk_id.is_none() || p.trunk_id == trunk_id)
    {
        let shared = common_digits(&p.number, to_phone);
        if shared > 0 && best.is_none_or(|(b, _)| shared > b) {
            best = Some((shared, p));
        }
    }
    best.map(|(_, p)| p.number.clone())
}

/// Leading digits two numbers share (a leading `+` is not a digit).
fn common_digits(a: &str, b: &str) -> usize {
    let digits = |s: &str| s.trim_start_matches('+').bytes().collect::<Vec<u8>>();
    digits(a)
        .iter()
        .zip(digits(b).iter())
        .take_while(|(x, y)| x == y)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ext(out: Option<&str>) -> Extension {
        Extension {
            id: "1001".into(),
            domain: "d".into(),
            active: true,
            outbound_caller_id_number: out.map(str::to_string),
            outbound_caller_id_name: None,
        }
    }

    #[test]
    fn request_then_extension_then_itself() {
        let resolve = |r: &ClickToCallRequest, e: &Extension| fixed(r, e).number;
        let with = ClickToCallRequest::from_value(
            &json!({"from_extension":"1001","to_phone":"0987","caller_id":"0900000020"}),
        )
        .unwrap();
        let without =
            ClickToCallRequest::from_value(&json!({"from_extension":"1001","to_phone":"0987"}))
                .unwrap();
        assert_eq!(resolve(&with, &ext(Some("0900000021"))), "0900000020");
        assert_eq!(resolve(&without, &ext(Some("0900000021"))), "0900000021");
        assert_eq!(resolve(&without, &ext(None)), "1001");
        // A directory value that is not a number is not presented.
        assert_eq!(resolve(&without, &ext(Some("Sales <x>"))), "1001");
    }

    fn pool(numbers: &[(&str, Option<i64>)]) -> Vec<PoolNumber> {
        numbers
            .iter()
            .map(|(n, t)| PoolNumber {
                number: n.to_string(),
                trunk_id: *t,
                description: None,
            })
            .collect()
    }

    fn config(strategy: CallerIdStrategy, numbers: &[(&str, Option<i64>)]) -> Config {
        Config {
            caller_id_strategy: strategy,
            caller_ids: pool(numbers),
            ..Config::default()
        }
    }

    fn to(phone: &str) -> ClickToCallRequest {
        ClickToCallRequest::from_value(&json!({"from_extension":"1001","to_phone":phone})).unwrap()
    }

    #[test]
    fn local_presence_takes_the_longest_shared_prefix_first_of_equals() {
        let p = pool(&[
            ("0281111111", Some(4)),
            ("0241111111", Some(4)),
            ("0245555555", Some(4)),
            ("0249999999", Some(5)),
        ]);
        // 024 shared by two of trunk 4's numbers: the first in the pool wins.
        assert_eq!(
            local_presence(&p, Some(4), "0247654321").as_deref(),
            Some("0241111111")
        );
        // Trunk 5's numbers only, when the trunk is known.
        assert_eq!(
            local_presence(&p, Some(5), "0281234567").as_deref(),
            Some("0249999999")
        );
        // Any trunk when none is known: the longest wins over the first.
        assert_eq!(
            local_presence(&p, None, "0245512345").as_deref(),
            Some("0245555555")
        );
        // Nothing shared, or a trunk without numbers: no match.
        assert_eq!(local_presence(&p, None, "1900"), None);
        assert_eq!(local_presence(&p, Some(7), "0241111111"), None);
        // A leading + is not a digit.
        assert_eq!(
            local_presence(&pool(&[("+84241", None)]), None, "842"),
            Some("+84241".into())
        );
    }

    #[test]
    fn strategies_apply_only_without_a_request_caller_id() {
        let c = config(
            CallerIdStrategy::LocalPresence,
            &[("0281111111", Some(4)), ("0241111111", Some(4))],
        );
        let e = ext(Some("0900000021"));
        let chosen = choose(&c, &to("0249876543"), &e, Some(4), None);
        assert_eq!(
            (chosen.number.as_str(), chosen.rule),
            ("0241111111", "local_presence")
        );
        // No match: the fixed chain, and it says so.
        let chosen = choose(&c, &to("1900"), &e, Some(4), None);
        assert_eq!(
            (chosen.number.as_str(), chosen.rule),
            ("0900000021", "outbound_caller_id")
        );
        // The request's own caller_id wins over any strategy.
        let with = ClickToCallRequest::from_value(
            &json!({"from_extension":"1001","to_phone":"0249876543","caller_id":"0900000020"}),
        )
        .unwrap();
        let chosen = choose(&c, &with, &e, Some(4), None);
        assert_eq!(
            (chosen.number.as_str(), chosen.rule),
            ("0900000020", "request")
        );
        // fixed ignores the pool.
        let f = config(CallerIdStrategy::Fixed, &[("0241111111", Some(4))]);
        let chosen = choose(&f, &to("0249876543"), &ext(None), Some(4), None);
        assert_eq!((chosen.number.as_str(), chosen.rule), ("1001", "extension"));
    }

    #[test]
    fn sticky_reuses_the_last_number_while_it_is_in_the_pool() {
        let c = config(
            CallerIdStrategy::Sticky,
            &[("0281111111", Some(4)), ("0241111111", Some(4))],
        );
        let e = ext(None);
        let chosen = choose(&c, &to("0249876543"), &e, Some(4), Some("0281111111"));
        assert_eq!(
            (chosen.number.as_str(), chosen.rule),
            ("0281111111", "sticky")
        );
        // Nothing remembered, or a number no longer in the pool: local presence.
        let chosen = choose(&c, &to("0249876543"), &e, Some(4), None);
        assert_eq!(chosen.rule, "local_presence");
        let chosen = choose(&c, &to("0249876543"), &e, Some(4), Some("0999"));
        assert_eq!(
            (chosen.number.as_str(), chosen.rule),
            ("0241111111", "local_presence")
        );
    }
}
