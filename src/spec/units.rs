//! Units of the spec language: sizes, percentages, durations, addresses.
//! Each type parses from the string an operator writes and prints back the same way.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

pub const KIB: u64 = 1024;
pub const MIB: u64 = KIB * 1024;
pub const GIB: u64 = MIB * 1024;
pub const TIB: u64 = GIB * 1024;
pub const PIB: u64 = TIB * 1024;
/// Largest size the spec accepts anywhere: 1 EiB. Anything larger is a typo.
pub const MAX_SIZE: u64 = PIB * 1024;

const SIZE_HINT: &str = "write a number and a unit: 512MiB, 20GiB, 4TiB (binary), 8TB (decimal), or 1073741824B for exact bytes";

/// A size in bytes, written with a unit: `2MiB`, `20GiB`, `8TB`, `1073741824B`.
/// Single-letter units (`K`, `M`, `G`, `T`, `P`) are binary, as in LVM's `-L 2G`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Size(pub u64);

fn unit_factor(unit: &str) -> Option<u64> {
    Some(match unit {
        "B" | "b" => 1,
        "K" | "k" | "KiB" => KIB,
        "M" | "m" | "MiB" => MIB,
        "G" | "g" | "GiB" => GIB,
        "T" | "t" | "TiB" => TIB,
        "P" | "p" | "PiB" => PIB,
        "kB" | "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "TB" => 1000 * 1000 * 1000 * 1000,
        "PB" => 1000 * 1000 * 1000 * 1000 * 1000,
        _ => return None,
    })
}

impl Size {
    pub fn parse(s: &str) -> Result<Size, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(t.len());
        let (num, unit) = (t[..split].replace('_', ""), t[split..].trim());
        if num.is_empty() || num.starts_with('.') {
            return Err(format!("`{s}` is not a size\nhint: {SIZE_HINT}"));
        }
        if unit.is_empty() {
            return Err(format!(
                "`{s}` has no unit\nhint: {SIZE_HINT} (a bare number is ambiguous)"
            ));
        }
        let Some(factor) = unit_factor(unit) else {
            return Err(format!(
                "unknown size unit `{unit}` in `{s}`\nhint: {SIZE_HINT}"
            ));
        };
        let bytes: u128 = if let Some((int, frac)) = num.split_once('.') {
            if frac.is_empty() || frac.len() > 6 || frac.contains('.') {
                return Err(format!("`{s}` is not a size\nhint: {SIZE_HINT}"));
            }
            let int: u128 = int.parse().unwrap_or(0);
            let scale = 10u128.pow(frac.len() as u32);
            let frac_v: u128 = frac.parse().map_err(|_| format!("`{s}` is not a size"))?;
            let whole = int.saturating_mul(scale).saturating_add(frac_v);
            let b = whole.saturating_mul(factor as u128);
            if !b.is_multiple_of(scale) {
                return Err(format!(
                    "`{s}` is not a whole number of bytes\nhint: use a smaller unit"
                ));
            }
            b / scale
        } else {
            let n: u128 = num
                .parse()
                .map_err(|_| format!("`{s}` is too large\nhint: sizes are limited to 1EiB"))?;
            n.saturating_mul(factor as u128)
        };
        if bytes > MAX_SIZE as u128 {
            return Err(format!(
                "`{s}` is absurdly large (over 1 EiB)\nhint: check the unit; {SIZE_HINT}"
            ));
        }
        Ok(Size(bytes as u64))
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, factor) in [
            ("PiB", PIB),
            ("TiB", TIB),
            ("GiB", GIB),
            ("MiB", MIB),
            ("KiB", KIB),
        ] {
            if b >= factor && b.is_multiple_of(factor) {
                return write!(f, "{}{unit}", b / factor);
            }
        }
        write!(f, "{b}B")
    }
}

/// Human-friendly approximation (for plans and reports): `1.5GiB`.
pub fn human(bytes: u64) -> String {
    let mut v = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] {
        if v < 1024.0 || unit == "PiB" {
            return if unit == "B" {
                format!("{bytes}B")
            } else {
                format!("{:.1}{unit}", v).replace(".0", "")
            };
        }
        v /= 1024.0;
    }
    format!("{bytes}B")
}

macro_rules! string_type {
    ($t:ty, $name:literal, $desc:literal, $pattern:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$t>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
        impl JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "description": $desc,
                    "pattern": $pattern,
                })
            }
        }
    };
}

string_type!(
    Size,
    "Size",
    "A size with a unit: 2MiB, 20GiB, 8TB, 1073741824B. K/M/G/T/P alone are binary (as in LVM).",
    "^[0-9][0-9_]*(\\.[0-9]+)?\\s*(B|b|K|k|M|m|G|g|T|t|P|p|KiB|MiB|GiB|TiB|PiB|kB|KB|MB|GB|TB|PB)$"
);

/// A partition's size: a [`Size`], or `rest` for all the remaining space (last partition only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartSize {
    Bytes(Size),
    Rest,
}

impl PartSize {
    pub fn parse(s: &str) -> Result<PartSize, String> {
        if s.trim() == "rest" {
            return Ok(PartSize::Rest);
        }
        Size::parse(s).map(PartSize::Bytes).map_err(|e| {
            if e.contains("\nhint:") {
                e
            } else {
                format!("{e}\nhint: or `rest` for the remaining space")
            }
        })
    }
}

impl fmt::Display for PartSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartSize::Bytes(s) => s.fmt(f),
            PartSize::Rest => f.write_str("rest"),
        }
    }
}

string_type!(
    PartSize,
    "PartitionSize",
    "A partition size (2MiB, 20GiB…) or `rest` for the remaining space.",
    "^(rest|[0-9][0-9_]*(\\.[0-9]+)?\\s*[A-Za-z]+)$"
);

/// A logical volume's size: exact, a percentage of the VG, or of its free space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LvSize {
    Bytes(Size),
    /// `50%VG`: a share of the volume group's total size.
    PercentVg(u8),
    /// `100%FREE`: a share of the free space left when the LV is created.
    PercentFree(u8),
}

impl LvSize {
    pub fn parse(s: &str) -> Result<LvSize, String> {
        let t = s.trim();
        if let Some((num, what)) = t.split_once('%') {
            let pct: u8 = num
                .trim()
                .parse()
                .ok()
                .filter(|p| (1..=100).contains(p))
                .ok_or_else(|| {
                    format!("`{s}`: the percentage must be a whole number from 1 to 100")
                })?;
            return match what.trim() {
                "VG" => Ok(LvSize::PercentVg(pct)),
                "FREE" => Ok(LvSize::PercentFree(pct)),
                other => Err(format!(
                    "unknown percentage base `{other}` in `{s}`\nhint: use N%VG (of the volume group) or N%FREE (of its free space)"
                )),
            };
        }
        Size::parse(t).map(LvSize::Bytes).map_err(|e| {
            if e.contains("\nhint:") {
                e
            } else {
                format!("{e}\nhint: or N%VG / N%FREE")
            }
        })
    }
}

impl fmt::Display for LvSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LvSize::Bytes(s) => s.fmt(f),
            LvSize::PercentVg(p) => write!(f, "{p}%VG"),
            LvSize::PercentFree(p) => write!(f, "{p}%FREE"),
        }
    }
}

string_type!(
    LvSize,
    "LvSize",
    "A logical volume size: 20GiB, 1073741824B (exact bytes), 50%VG, 100%FREE.",
    "^([0-9][0-9_]*(\\.[0-9]+)?\\s*[A-Za-z]+|[0-9]{1,3}%(VG|FREE))$"
);

/// A duration: `90s`, `5m`, `1h`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

impl Duration {
    pub fn parse(s: &str) -> Result<Duration, String> {
        let t = s.trim();
        let hint = "write a duration with units: 90s, 5m, 1h, 1h30m";
        if t.is_empty() {
            return Err(format!("empty duration\nhint: {hint}"));
        }
        let mut total: u64 = 0;
        let mut num = String::new();
        for c in t.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let mult = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                _ => return Err(format!("`{s}` is not a duration\nhint: {hint}")),
            };
            let n: u64 = num
                .parse()
                .map_err(|_| format!("`{s}` is not a duration\nhint: {hint}"))?;
            total = total.saturating_add(n.saturating_mul(mult));
            num.clear();
        }
        if !num.is_empty() {
            return Err(format!("`{s}` has no unit\nhint: {hint}"));
        }
        if total > 7 * 86400 {
            return Err(format!("`{s}` is longer than a week\nhint: {hint}"));
        }
        Ok(Duration(total))
    }
    pub fn secs(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s == 0 {
            return f.write_str("0s");
        }
        let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if sec > 0 {
            write!(f, "{sec}s")?;
        }
        Ok(())
    }
}

string_type!(
    Duration,
    "Duration",
    "A duration: 90s, 5m, 1h, 1h30m.",
    "^([0-9]+[smhd])+$"
);

/// An interface address with its prefix length: `192.168.1.10/24`, `2001:db8::10/64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let hint = "write an address with its prefix length: 192.168.1.10/24";
        let Some((a, p)) = s.trim().split_once('/') else {
            return Err(format!("`{s}` has no prefix length\nhint: {hint}"));
        };
        let addr: std::net::IpAddr = a
            .parse()
            .map_err(|_| format!("`{a}` is not an IP address\nhint: {hint}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 =
            p.parse().ok().filter(|p| *p <= max).ok_or_else(|| {
                format!("`{p}` is not a prefix length (0 to {max})\nhint: {hint}")
            })?;
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` lies in this address's subnet.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        match (self.addr, ip) {
            (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(a) & mask == u32::from(b) & mask
            }
            (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

string_type!(
    Cidr,
    "Cidr",
    "An IPv4 or IPv6 address with prefix length: 192.168.1.10/24.",
    "^[0-9A-Fa-f:.]+/[0-9]{1,3}$"
);

/// An Ethernet MAC address: `00:16:3e:12:34:56`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub fn parse(s: &str) -> Result<Mac, String> {
        let hint = "write six hex octets separated by colons: 00:16:3e:12:34:56";
        let parts: Vec<&str> = s.trim().split(':').collect();
        if parts.len() != 6 {
            return Err(format!("`{s}` is not a MAC address\nhint: {hint}"));
        }
        let mut out = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(format!("`{s}` is not a MAC address\nhint: {hint}"));
            }
            out[i] = u8::from_str_radix(p, 16)
                .map_err(|_| format!("`{s}` is not a MAC address\nhint: {hint}"))?;
        }
        if out[0] & 1 == 1 {
            return Err(format!(
                "`{s}` is a multicast address; a NIC needs a unicast MAC\nhint: the first octet must be even (Xen's prefix is 00:16:3e, QEMU's 52:54:00)"
            ));
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

string_type!(
    Mac,
    "Mac",
    "A unicast MAC address: 00:16:3e:12:34:56.",
    "^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"
);

/// An IP address without prefix (a gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ip(pub std::net::IpAddr);

impl Ip {
    pub fn parse(s: &str) -> Result<Ip, String> {
        s.trim().parse().map(Ip).map_err(|_| {
            format!("`{s}` is not an IP address\nhint: write an address such as 192.168.1.1")
        })
    }
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_type!(
    Ip,
    "Ip",
    "An IPv4 or IPv6 address: 192.168.1.1.",
    "^[0-9A-Fa-f:.]+$"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(Size::parse("2MiB").unwrap().0, 2 * MIB);
        assert_eq!(Size::parse("2G").unwrap().0, 2 * GIB);
        assert_eq!(Size::parse("8TB").unwrap().0, 8_000_000_000_000);
        assert_eq!(Size::parse("1073741824B").unwrap().0, GIB);
        assert_eq!(Size::parse("1.5GiB").unwrap().0, GIB + GIB / 2);
        assert_eq!(Size::parse("4 TiB").unwrap().0, 4 * TIB);
    }

    #[test]
    fn sizes_reject_missing_units_absurd_values_and_fractions_of_bytes() {
        assert!(Size::parse("20").unwrap_err().contains("no unit"));
        assert!(
            Size::parse("20GiBs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(Size::parse("2EiB").is_err());
        assert!(
            Size::parse("99999999999999999999999999999999999999999TiB")
                .unwrap_err()
                .contains("too large")
        );
        assert!(Size::parse("2000000PiB").unwrap_err().contains("absurdly"));
        assert!(Size::parse("1.5B").unwrap_err().contains("whole number"));
        assert!(Size::parse("GiB").is_err());
    }

    #[test]
    fn size_display_round_trips() {
        for s in ["2MiB", "20GiB", "4TiB", "1000B", "1536KiB"] {
            assert_eq!(Size::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn lv_sizes_and_percentages() {
        assert_eq!(LvSize::parse("50%VG").unwrap(), LvSize::PercentVg(50));
        assert_eq!(LvSize::parse("100%FREE").unwrap(), LvSize::PercentFree(100));
        assert!(LvSize::parse("150%VG").is_err());
        assert!(
            LvSize::parse("50%PVS")
                .unwrap_err()
                .contains("percentage base")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(Duration::parse("120s").unwrap().secs(), 120);
        assert_eq!(Duration::parse("1h30m").unwrap().secs(), 5400);
        assert_eq!(Duration::parse("1h30m").unwrap().to_string(), "1h30m");
        assert!(Duration::parse("120").unwrap_err().contains("no unit"));
        assert!(Duration::parse("3w").is_err());
    }

    #[test]
    fn cidr_and_mac() {
        let c = Cidr::parse("192.168.1.10/24").unwrap();
        assert!(c.contains("192.168.1.1".parse().unwrap()));
        assert!(!c.contains("192.168.2.1".parse().unwrap()));
        assert!(Cidr::parse("192.168.1.10").is_err());
        assert!(Cidr::parse("192.168.1.10/33").is_err());
        assert_eq!(
            Mac::parse("00:16:3E:AA:bb:01").unwrap().to_string(),
            "00:16:3e:aa:bb:01"
        );
        assert!(
            Mac::parse("01:00:5e:00:00:01")
                .unwrap_err()
                .contains("multicast")
        );
    }
}
