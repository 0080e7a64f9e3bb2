//! The units of a stack file as `docker stack deploy` reads them, which are not Kubernetes'
//! quantities: memory through go-units' `RAMInBytes` (binary multiples whatever the suffix says,
//! so `200M` and `200MB` are both 200 MiB), CPUs through docker/cli's `opts.ParseCPUs` (an exact
//! rational number of CPUs, in billionths).

/// Bytes of `size` (`512`, `200M`, `1.5g`, `64 MiB`, `1kb`), as go-units `RAMInBytes` reads it:
/// a number, an optional space, then an optional `b`, or `k m g t p` with an optional `b` or
/// `ib`, in any case, every multiple a power of 1024; a fraction of a byte is dropped.
pub fn ram_in_bytes(size: &str) -> Result<i64, String> {
    let invalid_size = || format!("invalid size: '{size}'");
    let Some(sep) = size.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(invalid_size());
    };
    let (number, suffix) = if size.as_bytes()[sep] == b' ' {
        (&size[..sep], &size[sep + 1..])
    } else {
        (&size[..=sep], &size[sep + 1..])
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing {number:?}: invalid syntax"))?;
    if value < 0.0 {
        return Err(invalid_size());
    }
    if suffix.is_empty() {
        return Ok(value as i64);
    }
    let lower = suffix.to_ascii_lowercase();
    let bad_suffix = || format!("invalid suffix: '{lower}'");
    if lower.len() > 3 {
        return Err(bad_suffix());
    }
    let bytes = lower.as_bytes();
    if bytes[0] == b'b' {
        return if bytes.len() == 1 {
            Ok(value as i64)
        } else {
            Err(bad_suffix())
        };
    }
    let power = match bytes[0] {
        b'k' => 1,
        b'm' => 2,
        b'g' => 3,
        b't' => 4,
        b'p' => 5,
        _ => return Err(bad_suffix()),
    };
    match &bytes[1..] {
        [] | [b'b'] | [b'i', b'b'] => Ok((value * 1024f64.powi(power)) as i64),
        _ => Err(bad_suffix()),
    }
}

/// Billionths of a CPU in `cpus` (`0.5`, `2`, `1/4`, `1.5e-1`), as docker/cli's `ParseCPUs`: an
/// exact rational number whose billionths must be whole.
pub fn nano_cpus(cpus: &str) -> Result<i64, String> {
    let unparsable = || format!("failed to parse {cpus} as a rational number");
    let (numerator, denominator) = match cpus.split_once('/') {
        Some((n, d)) => {
            let n: i128 = n.parse().map_err(|_| unparsable())?;
            let d: i128 = d.parse().map_err(|_| unparsable())?;
            if d == 0 {
                return Err(unparsable());
            }
            (n, d)
        }
        None => decimal(cpus).ok_or_else(unparsable)?,
    };
    let nano = numerator.checked_mul(1_000_000_000).ok_or_else(unparsable)?;
    if nano % denominator != 0 {
        return Err("value is too precise".into());
    }
    i64::try_from(nano / denominator).map_err(|_| unparsable())
}

/// `[+-]digits[.digits][e[+-]digits]` as an exact fraction.
fn decimal(text: &str) -> Option<(i128, i128)> {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (negative, digits) = match mantissa.as_bytes().first()? {
        b'-' => (true, &mantissa[1..]),
        b'+' => (false, &mantissa[1..]),
        _ => (false, mantissa),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut numerator: i128 = format!("{whole}{fraction}")
        .trim_start_matches('0')
        .parse()
        .unwrap_or(0);
    let mut denominator: i128 = 10i128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let scale = 10i128.checked_pow(exponent.unsigned_abs())?;
    if exponent >= 0 {
        numerator = numerator.checked_mul(scale)?;
    } else {
        denominator = denominator.checked_mul(scale)?;
    }
    Some((if negative { -numerator } else { numerator }, denominator))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_binary_whatever_the_suffix_says() {
        let mib = 1024 * 1024;
        for (size, bytes) in [
            ("512", 512),
            ("200M", 200 * mib),
            ("200MB", 200 * mib),
            ("200mib", 200 * mib),
            ("1.5g", 1536 * mib),
            ("64 MiB", 64 * mib),
            ("1kb", 1024),
            ("10b", 10),
            ("0.5k", 512),
            ("2t", 2 * 1024 * 1024 * mib),
        ] {
            assert_eq!(ram_in_bytes(size), Ok(bytes), "{size}");
        }
        assert_eq!(ram_in_bytes("10x"), Err("invalid suffix: 'x'".into()));
        assert_eq!(ram_in_bytes("10mbb"), Err("invalid suffix: 'mbb'".into()));
        assert_eq!(ram_in_bytes("10kx"), Err("invalid suffix: 'kx'".into()));
        assert_eq!(ram_in_bytes("M"), Err("invalid size: 'M'".into()));
        assert!(ram_in_bytes("-1M").is_err());
    }

    #[test]
    fn cpus_are_exact_billionths() {
        assert_eq!(nano_cpus("0.5"), Ok(500_000_000));
        assert_eq!(nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(nano_cpus(".25"), Ok(250_000_000));
        assert_eq!(nano_cpus("1/4"), Ok(250_000_000));
        assert_eq!(nano_cpus("1.5e-1"), Ok(150_000_000));
        assert_eq!(nano_cpus("0.000000001"), Ok(1));
        assert_eq!(nano_cpus("0.0000000001"), Err("value is too precise".into()));
        assert_eq!(nano_cpus("1/3"), Err("value is too precise".into()));
        assert_eq!(
            nano_cpus("half"),
            Err("failed to parse half as a rational number".into())
        );
    }
}
