//! Pure conversions from the spec's human units to the Engine's integers: Go durations to
//! nanoseconds, Kubernetes quantities to NanoCPUs and bytes.

/// Nanoseconds in `s`, a Go duration without sign ("1m30s", "500ms", "1.5h").
pub fn duration_nanos(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a duration such as 10s, 1m30s or 500ms");
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(total.round() as i64)
}

/// The value of a Kubernetes quantity as a float of base units ("500m" -> 0.5, "2Ki" -> 2048).
fn quantity_value(q: &str) -> Result<f64, String> {
    let bad = || format!("{q:?} is not a quantity such as 500m, 2, 200Mi or 1Gi");
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    if value < 0.0 {
        return Err(format!("{q:?} is negative"));
    }
    Ok(value * scale)
}

/// CPUs as the Engine's NanoCPUs ("500m" -> 500_000_000).
pub fn nano_cpus(q: &str) -> Result<i64, String> {
    Ok((quantity_value(q)? * 1e9).round() as i64)
}

/// Bytes ("200Mi" -> 209_715_200).
pub fn bytes(q: &str) -> Result<i64, String> {
    Ok(quantity_value(q)?.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(duration_nanos("10s"), Ok(10_000_000_000));
        assert_eq!(duration_nanos("1m30s"), Ok(90_000_000_000));
        assert_eq!(duration_nanos("500ms"), Ok(500_000_000));
        assert_eq!(duration_nanos("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(duration_nanos("2us"), Ok(2_000));
        assert_eq!(duration_nanos("0s"), Ok(0));
        for bad in ["", "10", "s", "10x", "1m30", "-5s", "1..5s"] {
            assert!(duration_nanos(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn cpu_quantities() {
        assert_eq!(nano_cpus("500m"), Ok(500_000_000));
        assert_eq!(nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(nano_cpus("0.1"), Ok(100_000_000));
        assert_eq!(nano_cpus("250000u"), Ok(250_000_000));
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(bytes("64Mi"), Ok(67_108_864));
        assert_eq!(bytes("1Gi"), Ok(1_073_741_824));
        assert_eq!(bytes("1G"), Ok(1_000_000_000));
        assert_eq!(bytes("1048576"), Ok(1_048_576));
        assert_eq!(bytes("1e3"), Ok(1000));
        assert!(bytes("12Qi").is_err());
        assert!(bytes("-1Mi").is_err());
    }
}
