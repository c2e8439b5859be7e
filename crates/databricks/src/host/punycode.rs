//! Punycode (RFC 3492) encoding of host names, only to tell users the ASCII form of an
//! international host name: the release binaries accept ASCII hosts only (the workspace pins
//! `idna_adapter` to its ASCII-only version for size), so this small encoder stands in for
//! the full IDNA tables. It lowercases ASCII and Latin-1 letters only (Unicode's case tables
//! would add about 20 KiB to every binary) and applies no other UTS #46 mapping.

const BASE: u32 = 36;
const T_MIN: u32 = 1;
const T_MAX: u32 = 26;
const SKEW: u32 = 38;
const DAMP: u32 = 700;
const INITIAL_BIAS: u32 = 72;
const INITIAL_N: u32 = 128;

fn adapt(delta: u32, points: u32, first: bool) -> u32 {
    let mut delta = if first { delta / DAMP } else { delta / 2 };
    delta += delta / points;
    let mut k = 0;
    while delta > ((BASE - T_MIN) * T_MAX) / 2 {
        delta /= BASE - T_MIN;
        k += BASE;
    }
    k + (BASE - T_MIN + 1) * delta / (delta + SKEW)
}

fn digit(d: u32) -> char {
    let d = d as u8;
    char::from(if d < 26 { b'a' + d } else { b'0' + d - 26 })
}

/// The Punycode of one label (without the `xn--` prefix); `None` on overflow (a label far
/// longer than DNS allows).
pub fn encode_label(label: &str) -> Option<String> {
    let points: Vec<u32> = label.chars().map(u32::from).collect();
    let mut out: String = label.chars().filter(char::is_ascii).collect();
    let basic = out.len() as u32;
    let mut handled = basic;
    if basic > 0 {
        out.push('-');
    }
    let (mut n, mut delta, mut bias) = (INITIAL_N, 0u32, INITIAL_BIAS);
    while (handled as usize) < points.len() {
        let m = points.iter().copied().filter(|c| *c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(handled + 1)?)?;
        n = m;
        for &c in &points {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        T_MIN
                    } else if k >= bias + T_MAX {
                        T_MAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q));
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n += 1;
    }
    Some(out)
}

/// Lowercase for ASCII and the Latin-1 letters (`À`–`Þ` but `×`); other characters as given.
fn lower(c: char) -> char {
    match c {
        'A'..='Z' | '\u{c0}'..='\u{de}' if c != '\u{d7}' => {
            char::from_u32(u32::from(c) + 0x20).unwrap_or(c)
        }
        _ => c,
    }
}

/// The ASCII form of a host name: each non-ASCII label lowercased ([`lower`]) and encoded as
/// `xn--…`; the dots IDNA treats as separators (`。．｡`) become `.`.
pub fn to_ascii_host(host: &str) -> Option<String> {
    let labels: Option<Vec<String>> = host
        .split(['.', '\u{3002}', '\u{ff0e}', '\u{ff61}'])
        .map(|label| {
            if label.is_ascii() {
                Some(label.to_ascii_lowercase())
            } else {
                encode_label(&label.chars().map(lower).collect::<String>())
                    .map(|p| format!("xn--{p}"))
            }
        })
        .collect();
    Some(labels?.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3492_samples_and_common_names() {
        // RFC 3492 section 7.1, samples (B) and (L).
        assert_eq!(
            encode_label("他们为什么不说中文").as_deref(),
            Some("ihqwcrb4cv8a8dqg056pqjye")
        );
        assert_eq!(
            encode_label("3年B組金八先生").as_deref(),
            Some("3B-ww4c5e180e575a65lsy2b")
        );
        assert_eq!(encode_label("bücher").as_deref(), Some("bcher-kva"));
        assert_eq!(encode_label("ü").as_deref(), Some("tda"));
        assert_eq!(
            to_ascii_host("adb-1.München。example").as_deref(),
            Some("adb-1.xn--mnchen-3ya.example")
        );
    }
}
