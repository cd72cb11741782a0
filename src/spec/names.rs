//! Naming rules of the tools hostform drives. A name that a tool would reject is caught here,
//! with the rule it breaks.

/// LVM's rules for VG and LV names (lvm(8), "VALID NAMES").
pub fn lvm(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if name.len() > 127 {
        return Err(format!("{what} name is longer than 127 characters"));
    }
    if name == "." || name == ".." {
        return Err(format!("`{name}` is not a valid {what} name"));
    }
    if name.starts_with('-') {
        return Err(format!(
            "{what} name `{name}` starts with `-`\nhint: LVM names may not start with a hyphen"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '_' | '.' | '-')))
    {
        return Err(format!(
            "{what} name `{name}` contains `{c}`\nhint: LVM names may contain only a-z A-Z 0-9 + _ . -"
        ));
    }
    Ok(())
}

/// Extra rules for LV names: prefixes and infixes LVM reserves for its internal volumes.
pub fn lv(name: &str) -> Result<(), String> {
    lvm(name, "logical volume")?;
    for prefix in ["snapshot", "pvmove"] {
        if name.starts_with(prefix) {
            return Err(format!(
                "logical volume name `{name}` starts with `{prefix}`, which LVM reserves\nhint: choose another name"
            ));
        }
    }
    const RESERVED: [&str; 16] = [
        "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_imeta", "_iorig", "_mimage", "_mlog",
        "_pmspare", "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_vorigin",
    ];
    if let Some(r) = RESERVED.iter().find(|r| name.contains(*r)) {
        return Err(format!(
            "logical volume name `{name}` contains `{r}`, which LVM reserves for internal volumes\nhint: choose another name"
        ));
    }
    Ok(())
}

/// Linux network interface names (dev_valid_name): 1–15 bytes, no `/`, `:` or whitespace.
/// hostform also refuses the characters that change meaning where the name lands: networkd
/// match globs (`*?[]`, so `e*` would match every interface) and xl vif keys (`,=` and quotes).
pub fn interface(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("`{name}` is not a valid interface name"));
    }
    if name.len() > 15 {
        return Err(format!(
            "interface name `{name}` is {} characters long; Linux allows at most 15\nhint: shorten it",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "interface name `{}` contains {c:?}, which Linux forbids",
            crate::diag::visible(name)
        ));
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(
            c,
            '*' | '?' | '[' | ']' | ',' | '=' | '\'' | '"' | '\\' | '!' | '$'
        )
    }) {
        return Err(format!(
            "interface name `{name}` contains `{c}`, which is a pattern or separator in networkd and xl configs\nhint: use letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

/// Disk target names a guest sees, per hypervisor. xl: `xvdX`, `hdX`, `sdX` with up to three
/// letters and, for PV guests, a partition number 1–15 (`xvda1`), as xen-vbd-interface(7)
/// reads them; libvirt: `vdX`, `sdX`, `hdX` (whole disks only).
pub fn disk_target(name: &str, xen: bool) -> Result<(), String> {
    let prefixes: &[&str] = if xen {
        &["xvd", "hd", "sd"]
    } else {
        &["vd", "sd", "hd"]
    };
    let ok = prefixes.iter().any(|p| {
        name.strip_prefix(p).is_some_and(|rest| {
            let letters = rest.trim_end_matches(|c: char| c.is_ascii_digit());
            let digits = &rest[letters.len()..];
            (1..=3).contains(&letters.len())
                && letters.chars().all(|c| c.is_ascii_lowercase())
                && (digits.is_empty()
                    || (xen
                        && !digits.starts_with('0')
                        && digits.parse::<u32>().is_ok_and(|n| (1..=15).contains(&n))))
        })
    });
    if ok {
        Ok(())
    } else {
        let forms = if xen {
            "xvda, hda or sda (xvdX, hdX, sdX)"
        } else {
            "vda, sda or hda (vdX, sdX, hdX)"
        };
        Err(format!(
            "`{}` is not a valid {} disk target\nhint: use a name such as {forms}",
            crate::diag::visible(name),
            if xen { "xl" } else { "libvirt" }
        ))
    }
}

/// Guest names: what both xl and libvirt accept, and safe as a file name.
pub fn vm(name: &str) -> Result<(), String> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok_first
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "`{name}` is not a valid guest name\nhint: use 1–64 characters a-z A-Z 0-9 - _ . starting with a letter or digit"
        ));
    }
    Ok(())
}

/// md array names: `md0`…`md127`, or a short name created as /dev/md/NAME.
pub fn array(name: &str) -> Result<(), String> {
    if let Some(n) = name.strip_prefix("md")
        && !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit())
    {
        return match n.parse::<u32>() {
            Ok(v) if v <= 127 => Ok(()),
            _ => Err(format!(
                "`{name}` is out of range\nhint: md device numbers go from md0 to md127"
            )),
        };
    }
    simple(name, "array", 32)
}

/// The device path of the spec's array `name`: `/dev/mdN` for a numbered array, `/dev/md/NAME`
/// for a named one (mdadm creates the named node there, with /dev/mdNNN behind it). The one
/// place this choice is made; every argv naming an array uses it.
pub fn array_path(name: &str) -> String {
    let numbered = name
        .strip_prefix("md")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    if numbered {
        format!("/dev/{name}")
    } else {
        format!("/dev/md/{name}")
    }
}

/// Labels chosen by the operator (disks, partitions, templates): 1–`max` characters of
/// a-z A-Z 0-9 - _ . (no `/`, which separates `DISK/PART` in references).
pub fn simple(name: &str, what: &str, max: usize) -> Result<(), String> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > max
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "`{name}` is not a valid {what} name\nhint: use 1–{max} characters a-z A-Z 0-9 - _ ."
        ));
    }
    Ok(())
}

/// Host names (RFC 1123): dot-separated labels of letters, digits and hyphens.
pub fn host(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid host name\nhint: use letters, digits and hyphens (RFC 1123)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvm_names() {
        assert!(lv("guest1_root").is_ok());
        assert!(lv("a+b.c-d").is_ok());
        assert!(lv("-x").is_err());
        assert!(lv("snapshot1").is_err());
        assert!(lv("pvmove0").is_err());
        assert!(lv("data_tmeta").is_err());
        assert!(lv("has space").is_err());
        assert!(lv("é").is_err());
        assert!(lvm("..", "volume group").is_err());
        assert!(lv(&"a".repeat(128)).is_err());
    }

    #[test]
    fn interface_names() {
        assert!(interface("br0").is_ok());
        assert!(interface("a-very-long-nam").is_ok());
        assert!(
            interface("a-very-long-name")
                .unwrap_err()
                .contains("at most 15")
        );
        assert!(interface("eth0:1").is_err());
        assert!(interface("a/b").is_err());
        assert!(interface("e*").is_err());
        assert!(interface("br0,script=x").is_err());
        assert!(interface("br'0").is_err());
        assert!(interface("..").is_err());
        assert!(disk_target("xvda", true).is_ok());
        assert!(disk_target("xvdaa", true).is_ok());
        assert!(disk_target("vda", true).is_err());
        assert!(disk_target("vda", false).is_ok());
        assert!(disk_target("xvda\",w\ndisk=x", true).is_err());
        assert!(disk_target("xvd", true).is_err());
        assert!(disk_target("xvda1", true).is_ok());
        assert!(disk_target("vda1", false).is_err());
        assert!(disk_target("xvda0", true).is_err());
    }

    #[test]
    fn vm_array_host_names() {
        assert!(vm("firewall-slave").is_ok());
        assert!(vm("-bad").is_err());
        assert!(array("md0").is_ok());
        assert!(array("md128").is_err());
        assert!(array("boot").is_ok());
        assert!(array("..").is_err());
        assert!(array(".").is_err());
        assert_eq!(array_path("md0"), "/dev/md0");
        assert_eq!(array_path("boot"), "/dev/md/boot");
        assert_eq!(array_path("md"), "/dev/md/md");
        assert!(host("dom0").is_ok());
        assert!(host("dom0.example.org").is_ok());
        assert!(host("dom_0").is_err());
    }
}
