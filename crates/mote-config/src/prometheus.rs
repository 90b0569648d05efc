//! Reading the Prometheus text exposition format, as much as a role's
//! [`crate::Role::performance`] needs to summarise its own metrics: sample
//! lines (name, labels, value) and quantiles of a histogram's buckets.
//!
//! Written here rather than taken from a crate: a sample line is simple,
//! roles read only the families they write themselves, and mote-config is
//! linked into every binary of the image (PID 1 included), so a reader of
//! a hundred lines beats another dependency. Anything it does not need
//! (comments, timestamps, exemplars) is skipped, never an error.

/// One sample line: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels in order.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// The value of label `k`.
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one line of Prometheus text (None for comments, blanks and
/// lines it cannot read).
pub fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let closed;
        loop {
            while chars
                .next_if(|(_, c)| c.is_whitespace() || *c == ',')
                .is_some()
            {}
            let (i, c) = chars.next()?;
            if c == '}' {
                closed = i + 1;
                break;
            }
            let mut key = String::from(c);
            loop {
                let (_, c) = chars.next()?;
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut val = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => val.push('\n'),
                        other => val.push(other),
                    },
                    other => val.push(other),
                }
            }
            labels.push((key.trim().to_string(), val));
        }
        rest = &r[closed..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The `q` quantile (0–1) from cumulative `(upper bound, count)` buckets,
/// interpolating linearly inside a bucket as Prometheus'
/// `histogram_quantile` does. None when the histogram is empty.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut b = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = b.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let i = b.iter().position(|(_, c)| *c >= rank)?;
    let (upper, count) = b[i];
    if upper.is_infinite() {
        // Beyond the last finite bound: the best we can say is that bound.
        return b[..i].last().map(|x| x.0);
    }
    let (lower, below) = if i == 0 { (0.0, 0.0) } else { b[i - 1] };
    let inside = count - below;
    if inside <= 0.0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / inside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let s = parse_line(r#"m{a="x\"y",b="2"} 3.5"#).unwrap();
        assert_eq!(s.name, "m");
        assert_eq!(s.label("a"), Some("x\"y"));
        assert_eq!(s.label("b"), Some("2"));
        assert_eq!(s.value, 3.5);
        assert_eq!(parse_line("plain 7").unwrap().value, 7.0);
        assert!(parse_line("# TYPE m counter").is_none());
        assert!(parse_line("").is_none());
        assert!(parse_line("broken{a=\"x\" 1").is_none());
    }

    #[test]
    fn quantiles_interpolate() {
        let b = [(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        assert!((quantile(0.5, &b).unwrap() - 0.1).abs() < 1e-9);
        assert!((quantile(0.75, &b).unwrap() - 0.15).abs() < 1e-9);
        assert!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]).is_none());
        // All in +Inf: the last finite bound.
        assert_eq!(
            quantile(0.5, &[(5.0, 0.0), (f64::INFINITY, 3.0)]),
            Some(5.0)
        );
    }
}
