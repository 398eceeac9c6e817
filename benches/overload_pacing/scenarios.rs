//! The two sipp peers of the overload bench, shaped like the FreeSWITCH rig's
//! (`/work/shared/freeswitch-rig/scenarios`): an agent that rings 200 ms,
//! answers, talks and hangs up 5 s after its answer; a carrier that rings
//! 1 s with early media (183 + RTP), answers, talks and waits for the BYE.
//! Both take a CANCEL while ringing, and a BYE or re-INVITE at any time.

use crate::e2e_common::RESPONSE_HEAD;

/// `SIP/2.0 <status>` with the dialog's To tag and no body.
fn reply(status: &str) -> String {
    format!("<send><![CDATA[\nSIP/2.0 {status}\n{RESPONSE_HEAD}Content-Length: 0\n\n]]></send>\n")
}

/// `SIP/2.0 <status>` carrying our SDP (`retrans` for a 200).
fn with_sdp(status: &str, retrans: bool) -> String {
    let r = if retrans { " retrans=\"500\"" } else { "" };
    format!(
        "<send{r}><![CDATA[\nSIP/2.0 {status}\n{RESPONSE_HEAD}Content-Type: application/sdp\nContent-Length: [len]\n\nv=0\no=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\na=ptime:20\na=sendrecv\n\n]]></send>\n"
    )
}

/// A 200 to an in-dialog request (BYE, CANCEL): the request's own headers.
const OK_PLAIN: &str = "<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n";

const INVITE_IN: &str = "<recv request=\"INVITE\" rrs=\"true\"><action>\
<ereg regexp=\".*\" search_in=\"hdr\" header=\"From:\" check_it=\"true\" assign_to=\"rfrom\"/>\
<ereg regexp=\".*\" search_in=\"hdr\" header=\"To:\" check_it=\"true\" assign_to=\"lto\"/>\
</action></recv>\n";

/// Ringing for `ring_ms` (a CANCEL then ends the call with 487), answered after.
fn ring_then_answer(ring_ms: u64) -> String {
    format!(
        "<recv request=\"CANCEL\" timeout=\"{ring_ms}\" ontimeout=\"answer\"/>\n{OK_PLAIN}\
<send><![CDATA[\nSIP/2.0 487 Request Terminated\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]SIPpTag[call_number]\n[last_Call-ID:]\nCSeq: [last_cseq_number] INVITE\nContent-Length: 0\n\n]]></send>\n\
<recv request=\"ACK\" next=\"end\"/>\n<label id=\"answer\"/>\n{ok}\
<recv request=\"BYE\" optional=\"true\" next=\"gotbye\"/>\n<recv request=\"ACK\"/>\n",
        ok = with_sdp("200 OK", true)
    )
}

/// Talks (`tone` looped as RTP, when given: else what already streams)
/// until a BYE, or until `hold_ms` and then sends one.
fn talk(tone: Option<&str>, hold_ms: u64) -> String {
    let stream = tone.map_or(String::new(), stream);
    format!(
        "{stream}<label id=\"incall\"/>\n\
<recv request=\"INVITE\" optional=\"true\" timeout=\"{hold_ms}\" ontimeout=\"hangup\" next=\"reinvite\"/>\n\
<recv request=\"BYE\" next=\"gotbye\"/>\n<label id=\"gotbye\"/>\n{OK_PLAIN}<nop next=\"end\"/>\n\
<label id=\"reinvite\"/>\n{ok}<recv request=\"ACK\" next=\"incall\"/>\n<label id=\"hangup\"/>\n\
<send retrans=\"500\"><![CDATA[\nBYE [next_url] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\nFrom: [$lto];tag=[pid]SIPpTag[call_number]\nTo: [$rfrom]\nCall-ID: [call_id]\nCSeq: 1 BYE\nContact: <sip:[local_ip]:[local_port];transport=[transport]>\nMax-Forwards: 70\nContent-Length: 0\n\n]]></send>\n\
<recv request=\"BYE\" optional=\"true\" next=\"byeglare\"/>\n<recv response=\"481\" optional=\"true\" next=\"end\"/>\n\
<recv response=\"200\" next=\"end\"/>\n<label id=\"byeglare\"/>\n{OK_PLAIN}<label id=\"end\"/>\n",
        ok = with_sdp("200 OK", true)
    )
}

fn stream(tone: &str) -> String {
    format!("<nop><action><exec rtp_stream=\"{tone},-1,0\"/></action></nop>\n")
}

fn scenario(name: &str, body: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"{name}\">\n{INVITE_IN}{body}</scenario>\n")
}

/// The agent's phone: 180, answers after 200 ms, talks, hangs up 5 s after.
pub fn agent(tone: &str) -> String {
    let body = format!(
        "{}{}{}",
        reply("180 Ringing"),
        ring_then_answer(200),
        talk(Some(tone), 5_000)
    );
    scenario("agent", &body)
}

/// The carrier: 180, 183 with early media for 1 s, answers, talks until the
/// BYE (an hour at most).
pub fn carrier(tone: &str) -> String {
    let body = format!(
        "{}{}{}{}{}",
        reply("180 Ringing"),
        with_sdp("183 Session Progress", false),
        stream(tone),
        ring_then_answer(1_000),
        talk(None, 3_600_000)
    );
    scenario("carrier", &body)
}
