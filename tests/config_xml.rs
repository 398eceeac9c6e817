//! The XML config: the sample parses to what it documents, and every bad
//! config is refused whole with the element at fault named.

use std::time::Duration;

use mod_zorio_c2c::core::config::{Config, TrunkTarget};

const SAMPLE: &str = include_str!("../conf/autoload_configs/zorio_c2c.conf.xml");

fn with(section: &str, body: &str) -> String {
    format!(r#"<configuration name="zorio_c2c.conf"><{section}>{body}</{section}></configuration>"#)
}

fn error_at(xml: &str) -> String {
    Config::from_xml(xml).expect_err("must be refused").at
}

#[test]
fn sample_config_mirrors_the_contract_examples() {
    let c = Config::from_xml(SAMPLE).unwrap();
    let poc = c.trunk_by_id(4).unwrap();
    assert_eq!(poc.name, "POC");
    assert_eq!(poc.target, TrunkTarget::Gateway("poc".into()));
    assert!(poc.active);
    assert_eq!(c.trunk_by_id(5).unwrap().name, "BACKUP");
    assert!(!c.trunk_by_id(7).unwrap().active);
    assert_eq!(c.lcr[0].prefix, "0");
    assert_eq!(
        c.caller_ids
            .iter()
            .map(|n| n.number.as_str())
            .collect::<Vec<_>>(),
        vec!["0900000020", "0900000021"]
    );
    assert_eq!(c.a_leg_timeout, Duration::from_secs(30));
    assert_eq!(c.http.rate_limit_per_minute, Some(10));
    assert_eq!(c.http.listen.to_string(), "127.0.0.1:8089");
    assert_eq!(c.domain, None);
    assert!(!c.auto_answer);
}

#[test]
fn an_empty_config_takes_the_defaults() {
    let c = Config::from_xml(r#"<configuration name="zorio_c2c.conf"/>"#).unwrap();
    assert_eq!(c, Config::default());
}

#[test]
fn found_inside_a_whole_freeswitch_document() {
    let doc = format!(
        r#"<document type="freeswitch/xml"><section name="configuration">
        <configuration name="other.conf"><x/></configuration>{}</section></document>"#,
        SAMPLE.split_once("-->").unwrap().1
    );
    assert_eq!(Config::from_xml(&doc).unwrap().trunks.len(), 3);
}

#[test]
fn bad_configs_name_the_element_at_fault() {
    let cases = [
        (
            with("trunks", r#"<trunk id="x" name="A" gateway="a"/>"#),
            "trunks/trunk[1]@id",
        ),
        (
            with(
                "trunks",
                r#"<trunk id="1" name="A" gateway="a"/><trunk id="1" name="B" gateway="b"/>"#,
            ),
            "trunks/trunk[2]@id",
        ),
        (
            with("trunks", r#"<trunk id="1" name="A"/>"#),
            "trunks/trunk[1]",
        ),
        (
            with(
                "trunks",
                r#"<trunk id="1" name="A" gateway="a" status="on"/>"#,
            ),
            "trunks/trunk[1]@status",
        ),
        (
            with(
                "trunks",
                &format!(r#"<trunk id="1" name="{}" gateway="a"/>"#, "n".repeat(101)),
            ),
            "trunks/trunk[1]@name",
        ),
        (
            with("trunks", r#"<trunk id="1" name="A" gateway="a b"/>"#),
            "trunks/trunk[1]@gateway",
        ),
        (
            with(
                "trunks",
                r#"<trunk id="1" name="A" dial-string="sofia/x/1"/>"#,
            ),
            "trunks/trunk[1]@dial-string",
        ),
        (
            with("lcr", r#"<route prefix="0" trunks="9"/>"#),
            "lcr/route[1]@trunks",
        ),
        (
            with("lcr", r#"<route prefix="0a" trunks="9"/>"#),
            "lcr/route[1]@prefix",
        ),
        (
            with("settings", r#"<param name="a-leg-timeout" value="soon"/>"#),
            "settings/param[a-leg-timeout]",
        ),
        (
            with("settings", r#"<param name="colour" value="blue"/>"#),
            "settings/param[colour]",
        ),
        (
            with("settings", r#"<param name="auto-answer" value="maybe"/>"#),
            "settings/param[auto-answer]",
        ),
        (
            with("http", r#"<param name="listen" value="localhost"/>"#),
            "http/param[listen]",
        ),
        (
            with("tokens", r#"<token name="crm" value="short"/>"#),
            "tokens/token[1]@value",
        ),
        (
            with("webhooks", r#"<param name="secret" value="plain"/>"#),
            "webhooks/param[secret]",
        ),
        (
            with("caller-ids", r#"<number value="09x"/>"#),
            "caller-ids/number[1]@value",
        ),
        (with("nonsense", ""), "nonsense"),
        ("<configuration".to_string(), "document"),
    ];
    for (xml, at) in cases {
        assert_eq!(error_at(&xml), at, "{xml}");
    }
}

#[test]
fn tokens_are_found_by_secret() {
    let c = Config::from_xml(&with(
        "tokens",
        r#"<token name="a" value="aaaaaaaaaa"/><token name="b" value="bbbbbbbbbb"
            webhook-url="http://127.0.0.1:9/h" webhook-secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"/>"#,
    ))
    .unwrap();
    assert_eq!(c.token_by_secret("bbbbbbbbbb").unwrap().name, "b");
    assert_eq!(c.token_by_secret("bbbbbbbbbc"), None);
    assert_eq!(c.token_by_secret(""), None);
    assert_eq!(c.tokens[1].webhook_secrets.len(), 1);
}

#[test]
fn the_cluster_section_is_optional_and_parsed_whole() {
    use mod_zorio_c2c::core::config::ClusterSettings;
    assert_eq!(Config::from_xml(SAMPLE).unwrap().cluster, None);
    // The sample's commented-out section, uncommented, is valid.
    let start = SAMPLE.find("  <cluster>").expect("a <cluster> example");
    let end = SAMPLE.find("</cluster>").unwrap() + "</cluster>".len();
    let section = &SAMPLE[start..end];
    let c = Config::from_xml(&format!(
        r#"<configuration name="zorio_c2c.conf">{section}</configuration>"#
    ))
    .unwrap()
    .cluster
    .unwrap();
    assert_eq!(c.redis_url, "redis://127.0.0.1:6379/0");
    assert_eq!(c.node_name, "fs1");
    assert_eq!(c.node_url.as_deref(), Some("http://10.0.0.11:8089"));
    assert_eq!(c.command_timeout, Duration::from_millis(250));
    assert_eq!(c.node_ttl, Duration::from_secs(5));
    let minimal = with(
        "cluster",
        r#"<param name="redis-url" value="redis://r:6379"/><param name="node-secret" value="0123456789abcdef"/>"#,
    );
    let c = Config::from_xml(&minimal).unwrap().cluster.unwrap();
    let defaults = ClusterSettings::new("redis://r:6379", &c.node_name, "0123456789abcdef");
    assert_eq!(c, defaults);
    assert!(!c.node_name.is_empty(), "the host name by default");

    let secret = r#"<param name="node-secret" value="0123456789abcdef"/>"#;
    for (body, at) in [
        (secret.to_string(), "cluster/param[redis-url]"),
        (
            format!(r#"<param name="redis-url" value="http://r"/>{secret}"#),
            "cluster/param[redis-url]",
        ),
        (
            r#"<param name="redis-url" value="redis://r"/><param name="node-secret" value="short"/>"#
                .to_string(),
            "cluster/param[node-secret]",
        ),
        (
            format!(r#"<param name="redis-url" value="redis://r"/>{secret}<param name="node-name" value="a b"/>"#),
            "cluster/param[node-name]",
        ),
        (
            format!(r#"<param name="redis-url" value="redis://r"/>{secret}<param name="node-ttl" value="1"/>"#),
            "cluster/param[node-ttl]",
        ),
        (
            format!(r#"<param name="redis-url" value="redis://r"/>{secret}<param name="bogus" value="1"/>"#),
            "cluster/param[bogus]",
        ),
    ] {
        assert_eq!(error_at(&with("cluster", &body)), at, "{body}");
    }
}

#[test]
fn caller_id_strategies_parse_and_a_bad_one_is_refused_whole() {
    use mod_zorio_c2c::core::config::CallerIdStrategy;
    let c = Config::from_xml(SAMPLE).unwrap();
    assert_eq!(c.caller_id_strategy, CallerIdStrategy::Fixed);
    assert_eq!(c.sticky_ttl, Duration::from_secs(30 * 24 * 3600));
    let pool = r#"<number value="0900000020"/>"#;
    let parsed = |attrs: &str| {
        Config::from_xml(&format!(
            r#"<configuration name="zorio_c2c.conf"><caller-ids {attrs}>{pool}</caller-ids></configuration>"#
        ))
    };
    let c = parsed(r#"strategy="sticky" sticky-ttl="3600""#).unwrap();
    assert_eq!(c.caller_id_strategy, CallerIdStrategy::Sticky);
    assert_eq!(c.sticky_ttl, Duration::from_secs(3600));
    assert_eq!(
        parsed(r#"strategy="local-presence""#)
            .unwrap()
            .caller_id_strategy,
        CallerIdStrategy::LocalPresence
    );
    for (attrs, at, says) in [
        (
            r#"strategy="nearest""#,
            "caller-ids@strategy",
            "unknown strategy \"nearest\"",
        ),
        (r#"sticky-ttl="soon""#, "caller-ids@sticky-ttl", ""),
        (
            r#"sticky-ttl="0""#,
            "caller-ids@sticky-ttl",
            "at least 1 second",
        ),
    ] {
        let e = parsed(attrs).expect_err(attrs);
        assert_eq!(e.at, at, "{attrs}");
        assert!(e.to_string().contains(says), "{attrs}: {e}");
    }
}

#[test]
fn max_call_duration_is_seconds_with_zero_for_none() {
    let c = Config::from_xml(SAMPLE).unwrap();
    assert_eq!(c.max_call_duration, None, "the sample sets 0: no limit");
    let c = Config::from_xml(&with(
        "settings",
        r#"<param name="max-call-duration" value="3600"/>"#,
    ))
    .unwrap();
    assert_eq!(c.max_call_duration, Some(3600));
    for bad in ["-1", "86401", "1.5", "soon"] {
        let xml = with(
            "settings",
            &format!(r#"<param name="max-call-duration" value="{bad}"/>"#),
        );
        assert_eq!(error_at(&xml), "settings/param[max-call-duration]", "{bad}");
    }
}

/// A `<settings>` param of two words: the sample leaves `flag` false, `on`
/// sets it, and `bad` is refused naming the param and both words.
fn two_words(param: &str, (off, on): (&str, &str), bad: &str, flag: fn(&Config) -> bool) {
    assert!(
        !flag(&Config::from_xml(SAMPLE).unwrap()),
        "{param} by default"
    );
    let set = |value: &str| {
        with(
            "settings",
            &format!(r#"<param name="{param}" value="{value}"/>"#),
        )
    };
    assert!(flag(&Config::from_xml(&set(on)).unwrap()), "{param} {on}");
    assert!(
        !flag(&Config::from_xml(&set(off)).unwrap()),
        "{param} {off}"
    );
    let e = Config::from_xml(&set(bad)).expect_err("refused");
    assert_eq!(e.at, format!("settings/param[{param}]"));
    assert!(e.to_string().contains(&format!("not {off} or {on}")), "{e}");
}

#[test]
fn agent_busy_is_ring_or_reject() {
    two_words("agent-busy", ("ring", "reject"), "queue", |c| {
        c.reject_busy_agent
    });
}

#[test]
fn paced_ringback_is_skip_or_play() {
    two_words("paced-ringback", ("skip", "play"), "yes", |c| {
        c.paced_ringback
    });
}

#[test]
fn recording_params_parse_and_bad_values_are_refused() {
    use mod_zorio_c2c::core::recording::RecordCalls;
    let c = Config::from_xml(SAMPLE).unwrap();
    assert_eq!(c.record_calls, RecordCalls::OnRequest);
    assert_eq!(c.recording_format, "wav");
    let c = Config::from_xml(&with(
        "settings",
        r#"<param name="record-calls" value="always"/><param name="recordings-dir" value="/srv/rec"/><param name="recording-format" value="MP3"/>"#,
    ))
    .unwrap();
    assert_eq!(c.record_calls, RecordCalls::Always);
    assert_eq!(c.recordings_dir, std::path::PathBuf::from("/srv/rec"));
    assert_eq!(c.recording_format, "mp3");
    let never = with("settings", r#"<param name="record-calls" value="never"/>"#);
    assert_eq!(
        Config::from_xml(&never).unwrap().record_calls,
        RecordCalls::Never
    );
    assert_eq!(
        error_at(&with(
            "settings",
            r#"<param name="record-calls" value="sometimes"/>"#
        )),
        "settings/param[record-calls]"
    );
    assert_eq!(
        error_at(&with(
            "settings",
            r#"<param name="recording-format" value="../x"/>"#
        )),
        "settings/param[recording-format]"
    );
}

#[test]
fn recording_retention_is_days_with_zero_for_keep() {
    assert_eq!(Config::from_xml(SAMPLE).unwrap().recording_retention, None);
    let c = Config::from_xml(&with(
        "settings",
        r#"<param name="recording-retention" value="30"/>"#,
    ))
    .unwrap();
    assert_eq!(
        c.recording_retention,
        Some(Duration::from_secs(30 * 86_400))
    );
    assert_eq!(
        error_at(&with(
            "settings",
            r#"<param name="recording-retention" value="-2"/>"#
        )),
        "settings/param[recording-retention]"
    );
}

#[test]
fn trunk_limits_parse_and_bad_ones_are_refused_naming_the_trunk_and_attribute() {
    let c = Config::from_xml(SAMPLE).unwrap();
    assert!(c
        .trunks
        .iter()
        .all(|t| t.cps.is_none() && t.max_channels.is_none()));
    assert_eq!(c.max_pacing_wait, Duration::from_secs(1));
    assert_eq!(c.trunk_queue_timeout, Duration::from_secs(30));
    let trunk = |attrs: &str| {
        with(
            "trunks",
            &format!(r#"<trunk id="4" name="POC" gateway="poc" {attrs}/>"#),
        )
    };
    let c = Config::from_xml(&trunk(r#"cps="2.5" max-channels="30""#)).unwrap();
    assert_eq!(c.trunks[0].cps, Some(2.5));
    assert_eq!(c.trunks[0].max_channels, Some(30));
    for (attrs, at, says) in [
        (r#"cps="0""#, "trunks/trunk[1]@cps", "above 0"),
        (r#"cps="-1""#, "trunks/trunk[1]@cps", "above 0"),
        (r#"cps="ten""#, "trunks/trunk[1]@cps", "not a valid number"),
        (r#"cps="NaN""#, "trunks/trunk[1]@cps", "above 0"),
        (
            r#"max-channels="0""#,
            "trunks/trunk[1]@max-channels",
            "at least 1",
        ),
        (
            r#"max-channels="-3""#,
            "trunks/trunk[1]@max-channels",
            "not a valid number",
        ),
        (
            r#"max-channels="2.5""#,
            "trunks/trunk[1]@max-channels",
            "not a valid number",
        ),
    ] {
        let e = Config::from_xml(&trunk(attrs)).expect_err(attrs);
        assert_eq!(e.at, at, "{attrs}");
        let text = e.to_string();
        assert!(
            text.contains("\"POC\"") && text.contains(says),
            "{attrs}: {text}"
        );
    }
    let c = Config::from_xml(&with(
        "settings",
        r#"<param name="max-pacing-wait" value="0.5"/><param name="trunk-queue-timeout" value="10"/>"#,
    ))
    .unwrap();
    assert_eq!(c.max_pacing_wait, Duration::from_millis(500));
    assert_eq!(c.trunk_queue_timeout, Duration::from_secs(10));
    assert_eq!(
        error_at(&with(
            "settings",
            r#"<param name="trunk-queue-timeout" value="soon"/>"#
        )),
        "settings/param[trunk-queue-timeout]"
    );
}
