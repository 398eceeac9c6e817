//! One `Range: bytes=…` of a request, as RFC 9110 §14 reads it: a single
//! range `a-b`, `a-` or `-n` over a representation of `size` bytes.

/// What a `Range` header asks of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No (usable) range: the whole representation, 200.
    Whole,
    /// Bytes `start..=end`, 206.
    Part { start: u64, end: u64 },
    /// None of it can be served: 416.
    Unsatisfiable,
}

/// Reads `Range`; several ranges or another unit are served whole (a
/// server may ignore a Range it does not support).
pub fn parse(header: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim(), b.trim()) {
        ("", n) => match num(n) {
            Some(0) => RangeAsk::Unsatisfiable,
            Some(_) if size == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            None => RangeAsk::Whole,
        },
        (a, "") => match num(a) {
            Some(a) if a < size => RangeAsk::Part {
                start: a,
                end: size - 1,
            },
            Some(_) => RangeAsk::Unsatisfiable,
            None => RangeAsk::Whole,
        },
        (a, b) => match (num(a), num(b)) {
            (Some(a), Some(b)) if a > b => RangeAsk::Whole,
            (Some(a), Some(_)) if a >= size => RangeAsk::Unsatisfiable,
            (Some(a), Some(b)) => RangeAsk::Part {
                start: a,
                end: b.min(size - 1),
            },
            _ => RangeAsk::Whole,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms_and_their_edges() {
        let p = |h: &str| parse(Some(h), 1000);
        assert_eq!(p("bytes=0-99"), RangeAsk::Part { start: 0, end: 99 });
        assert_eq!(
            p("bytes=990-2000"),
            RangeAsk::Part {
                start: 990,
                end: 999
            }
        );
        assert_eq!(
            p("bytes=500-"),
            RangeAsk::Part {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            p("bytes=-100"),
            RangeAsk::Part {
                start: 900,
                end: 999
            }
        );
        assert_eq!(p("bytes=-5000"), RangeAsk::Part { start: 0, end: 999 });
        assert_eq!(p("bytes=1000-"), RangeAsk::Unsatisfiable);
        assert_eq!(p("bytes=1000-1001"), RangeAsk::Unsatisfiable);
        assert_eq!(p("bytes=-0"), RangeAsk::Unsatisfiable);
        assert_eq!(p("bytes=5-1"), RangeAsk::Whole);
        assert_eq!(p("bytes=0-1,5-6"), RangeAsk::Whole);
        assert_eq!(p("items=0-1"), RangeAsk::Whole);
        assert_eq!(p("bytes=x-1"), RangeAsk::Whole);
        assert_eq!(parse(None, 10), RangeAsk::Whole);
        assert_eq!(parse(Some("bytes=-1"), 0), RangeAsk::Unsatisfiable);
    }
}
