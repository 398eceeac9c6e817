//! Trunk choice: a forced trunk, least-cost routing with failover, or the
//! switch's dialplan; and which failures move on to the next trunk.

use super::config::{Config, Trunk, TrunkTarget};
use super::errors::{codes, ApiError};
use super::request::ClickToCallRequest;
use crate::switch::Route;

/// One way to reach the customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub trunk: Option<(i64, String)>,
    pub route: Route,
}

/// How a call's B-leg is routed.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutePlan {
    /// `direct_gateway` or `dialplan_default` (the contract's `routing_mode`).
    pub mode: &'static str,
    /// Tried in order; the first is the trunk reported in the 202.
    pub candidates: Vec<Candidate>,
}

impl RoutePlan {
    /// The trunk reported in the 202 (`None` under `dialplan_default`).
    pub fn reported_trunk(&self) -> Option<&(i64, String)> {
        if self.mode == "direct_gateway" {
            self.candidates.first().and_then(|c| c.trunk.as_ref())
        } else {
            None
        }
    }
}

/// Chooses the route for a request: `trunk_id` wins over `trunk_name`; with
/// neither, the longest matching LCR prefix gives the active trunks, cheapest
/// first; with no LCR route, the dialplan.
pub fn plan(config: &Config, req: &ClickToCallRequest) -> Result<RoutePlan, ApiError> {
    let forced = match (&req.trunk_id, &req.trunk_name) {
        (Some(id), _) => Some(config.trunk_by_id(*id).ok_or_else(|| {
            ApiError::new(
                422,
                codes::TRUNK_NOT_FOUND,
                format!("trunk_id {id} does not exist"),
            )
        })?),
        (None, Some(name)) => Some(config.trunk_by_name(name).ok_or_else(|| {
            ApiError::new(
                422,
                codes::TRUNK_NOT_FOUND,
                format!("trunk_name {name:?} does not exist"),
            )
        })?),
        (None, None) => None,
    };
    if let Some(trunk) = forced {
        if !trunk.active {
            return Err(ApiError::new(
                422,
                codes::TRUNK_INACTIVE,
                format!("trunk {} ({}) is inactive", trunk.id, trunk.name),
            ));
        }
        return Ok(RoutePlan {
            mode: "direct_gateway",
            candidates: vec![candidate(trunk)],
        });
    }
    let route = config
        .lcr
        .iter()
        .filter(|r| req.to_phone.starts_with(&r.prefix))
        .max_by_key(|r| r.prefix.len());
    let mut trunks: Vec<&Trunk> = route
        .map(|r| {
            r.trunk_ids
                .iter()
                .filter_map(|id| config.trunk_by_id(*id))
                .filter(|t| t.active)
                .collect()
        })
        .unwrap_or_default();
    // Stable: equal costs keep the route's order.
    trunks.sort_by(|a, b| a.cost.total_cmp(&b.cost));
    let mut candidates: Vec<Candidate> = trunks.into_iter().map(candidate).collect();
    if candidates.is_empty() {
        candidates.push(Candidate {
            trunk: None,
            route: Route::Dialplan {
                dialplan: config.dialplan.clone(),
                context: config.dialplan_context.clone(),
            },
        });
    }
    Ok(RoutePlan {
        mode: "dialplan_default",
        candidates,
    })
}

fn candidate(trunk: &Trunk) -> Candidate {
    Candidate {
        trunk: Some((trunk.id, trunk.name.clone())),
        route: match &trunk.target {
            TrunkTarget::Gateway(g) => Route::Gateway { gateway: g.clone() },
            TrunkTarget::DialString(d) => Route::DialString {
                template: d.clone(),
            },
        },
    }
}

/// Whether a failed attempt is the trunk's fault (try the next trunk) rather
/// than the customer's answer (busy, no answer, rejected: stop).
pub fn is_trunk_failure(cause: &str, sip_code: Option<u16>) -> bool {
    if let Some(code) = sip_code {
        match code {
            486 | 600 | 603 | 480 | 487 => return false,
            408 | 500..=599 => return true,
            _ => {}
        }
    }
    matches!(
        cause,
        "NORMAL_TEMPORARY_FAILURE"
            | "GATEWAY_DOWN"
            | "NETWORK_OUT_OF_ORDER"
            | "DESTINATION_OUT_OF_ORDER"
            | "RECOVERY_ON_TIMER_EXPIRE"
            | "SWITCH_CONGESTION"
            | "NORMAL_CIRCUIT_CONGESTION"
            | "SERVICE_UNAVAILABLE"
            | "REQUESTED_CHAN_UNAVAIL"
            | "INCOMPATIBLE_DESTINATION"
            | "BEARERCAPABILITY_NOTAVAIL"
            | "FACILITY_NOT_SUBSCRIBED"
            | "OUTGOING_CALL_BARRED"
            | "NO_ROUTE_TRANSIT_NET"
            | "CHAN_NOT_IMPLEMENTED"
            | "PROGRESS_TIMEOUT"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Config {
        Config::from_xml(include_str!(
            "../../conf/autoload_configs/zorio_c2c.conf.xml"
        ))
        .unwrap()
    }

    fn req(v: serde_json::Value) -> ClickToCallRequest {
        ClickToCallRequest::from_value(&v).unwrap()
    }

    fn names(p: &RoutePlan) -> Vec<Option<String>> {
        p.candidates
            .iter()
            .map(|c| c.trunk.as_ref().map(|t| t.1.clone()))
            .collect()
    }

    #[test]
    fn lcr_tries_cheapest_active_first() {
        let p = plan(
            &sample(),
            &req(json!({"from_extension":"1001","to_phone":"0987654321"})),
        )
        .unwrap();
        assert_eq!(p.mode, "dialplan_default");
        assert_eq!(names(&p), vec![Some("BACKUP".into()), Some("POC".into())]);
        assert_eq!(p.reported_trunk(), None);
    }

    #[test]
    fn longest_prefix_wins_and_no_route_goes_to_dialplan() {
        let mut c = sample();
        c.lcr.push(super::super::config::LcrRoute {
            prefix: "098".into(),
            trunk_ids: vec![4],
        });
        let p = plan(
            &c,
            &req(json!({"from_extension":"1001","to_phone":"0987654321"})),
        )
        .unwrap();
        assert_eq!(names(&p), vec![Some("POC".into())]);
        let p = plan(
            &c,
            &req(json!({"from_extension":"1001","to_phone":"+4412345"})),
        )
        .unwrap();
        assert_eq!(p.candidates.len(), 1);
        assert!(
            matches!(p.candidates[0].route, Route::Dialplan { ref context, .. } if context == "default")
        );
    }

    #[test]
    fn forced_trunk_id_wins_over_name() {
        let c = sample();
        let p = plan(
            &c,
            &req(json!({"from_extension":"1001","to_phone":"0987654321","trunk_id":4,"trunk_name":"BACKUP"})),
        )
        .unwrap();
        assert_eq!(p.mode, "direct_gateway");
        assert_eq!(p.reported_trunk(), Some(&(4, "POC".to_string())));
        let p = plan(
            &c,
            &req(json!({"from_extension":"1001","to_phone":"0987654321","trunk_name":"backup"})),
        )
        .unwrap();
        assert_eq!(p.reported_trunk(), Some(&(5, "BACKUP".to_string())));
    }

    #[test]
    fn unknown_and_inactive_trunks_have_their_codes() {
        let c = sample();
        let e = plan(
            &c,
            &req(json!({"from_extension":"1001","to_phone":"0987","trunk_id":99})),
        )
        .unwrap_err();
        assert_eq!(e.code, "trunk_not_found");
        let e = plan(
            &c,
            &req(json!({"from_extension":"1001","to_phone":"0987","trunk_name":"nope"})),
        )
        .unwrap_err();
        assert_eq!(e.code, "trunk_not_found");
        let e = plan(
            &c,
            &req(json!({"from_extension":"1001","to_phone":"0987","trunk_id":7})),
        )
        .unwrap_err();
        assert_eq!(e.code, "trunk_inactive");
    }

    #[test]
    fn failover_only_on_trunk_failures() {
        assert!(is_trunk_failure("NORMAL_TEMPORARY_FAILURE", Some(503)));
        assert!(is_trunk_failure("GATEWAY_DOWN", None));
        assert!(is_trunk_failure("RECOVERY_ON_TIMER_EXPIRE", Some(408)));
        assert!(!is_trunk_failure("USER_BUSY", Some(486)));
        assert!(!is_trunk_failure("NO_ANSWER", None));
        assert!(!is_trunk_failure("CALL_REJECTED", Some(603)));
        assert!(!is_trunk_failure("NORMAL_TEMPORARY_FAILURE", Some(486)));
    }
}
