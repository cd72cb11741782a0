//! Disk images that LVs are created from (`image:` in the spec): what `qemu-img info
//! --output=json` says about them. Only the spec's images are read, one process each, at plan
//! time; discovery of the host does not depend on them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::runner::Runner;

/// What the planner needs to know about an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The absolute path qemu-img read.
    pub path: String,
    /// `qcow2`, `vmdk`, `raw`…: named in the conversion's driver, never probed again.
    pub format: String,
    /// The disk's size as a guest sees it, in bytes: the LV's size before rounding to extents.
    pub virtual_size: u64,
    /// Why the image is not one self-contained file of a known format, when it is not: it
    /// names another file (a backing file, a qcow2 data file, a VMDK extent, a `json:` or
    /// `nbd:` pseudo-file), or its format is not one hostform imports. Refused: the
    /// conversion would copy whatever that other file is (a host file, a host block device)
    /// into a guest's LV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsafe_because: Option<String>,
}

/// An image of the spec as read at plan time: its information, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFact {
    Read(ImageInfo),
    Unreadable(String),
}

/// The formats an image may have: ones whose content is the file itself once the checks
/// below pass. Anything else (a protocol, a host device, a format qemu-img merely knows) is
/// refused.
pub const FORMATS: &[&str] = &["raw", "qcow2", "vmdk", "vdi", "vhdx", "vpc", "qed"];

#[derive(Deserialize)]
struct QemuImgInfo {
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    format: String,
    filename: String,
}

/// Keys of `qemu-img info --output=json` whose presence means the image depends on another
/// file, whatever it names.
const REFERENCE_KEYS: &[&str] = &[
    "backing-filename",
    "full-backing-filename",
    "backing-filename-format",
    "backing-image",
    "data-file",
];

/// Every other file the JSON names, anywhere in it (children, extents, data files, backing
/// files), as `what: name`.
fn references(v: &serde_json::Value, own: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if REFERENCE_KEYS.contains(&k.as_str()) {
                    let name = x
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string());
                    out.push(format!("{k} {name}"));
                } else if k == "filename" {
                    match x.as_str() {
                        Some(f) if f == own => {}
                        Some(f) => out.push(format!("file {f}")),
                        None => out.push(format!("file {x}")),
                    }
                }
                references(x, own, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| references(x, own, out)),
        _ => {}
    }
}

/// Parse `qemu-img info --output=json` of one image, and judge whether it is self-contained.
pub fn parse_info(path: &str, json: &str) -> Result<ImageInfo, String> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| format!("unexpected `qemu-img info --output=json` output: {e}"))?;
    let i: QemuImgInfo = serde_json::from_value(v.clone())
        .map_err(|e| format!("unexpected `qemu-img info --output=json` output: {e}"))?;
    if i.virtual_size == 0 {
        return Err("its virtual size is 0 bytes".into());
    }
    let mut refs = Vec::new();
    references(&v, &i.filename, &mut refs);
    refs.dedup();
    let pseudo = ["json:", "nbd:"].iter().any(|p| i.filename.starts_with(p));
    let unsafe_because = if !refs.is_empty() {
        Some(format!("it names another file: {}", refs.join(", ")))
    } else if pseudo {
        Some(format!("it is not a plain file: {}", i.filename))
    } else if !FORMATS.contains(&i.format.as_str()) {
        Some(format!(
            "its format {} is not one hostform imports ({})",
            i.format,
            FORMATS.join(", ")
        ))
    } else {
        None
    };
    Ok(ImageInfo {
        path: path.to_string(),
        format: i.format,
        virtual_size: i.virtual_size,
        unsafe_because,
    })
}

/// The source of `qemu-img convert` for an image already judged self-contained: its format
/// and file given as JSON, the backing chain cut (`"backing": null`), so qemu-img opens that
/// one file with that one driver and follows nothing it finds in it, and never probes.
pub fn convert_source(info: &ImageInfo) -> String {
    let spec = serde_json::json!({
        "backing": serde_json::Value::Null,
        "driver": info.format,
        "file": {"driver": "file", "filename": info.path},
    });
    format!("json:{spec}")
}

/// Read one image with `qemu-img info`: `-U`, no lock is taken (reading is all it does).
pub fn inspect(r: &dyn Runner, path: &str) -> ImageFact {
    match r.run(&["qemu-img", "info", "--output=json", "-U", path]) {
        Ok(o) if o.status == 0 => match parse_info(path, &o.stdout) {
            Ok(i) => ImageFact::Read(i),
            Err(e) => ImageFact::Unreadable(e),
        },
        Ok(o) => ImageFact::Unreadable(
            o.stderr
                .trim()
                .strip_prefix("qemu-img: ")
                .unwrap_or(o.stderr.trim())
                .to_string(),
        ),
        Err(e) => ImageFact::Unreadable(e.to_string()),
    }
}

/// The file an image of the spec is: `img` taken relative to `dir`, every symlink resolved,
/// and it must be a regular file inside `root` (the repository). Not a device, a FIFO, or a
/// file elsewhere reached by `..` or a link.
pub fn resolve(root: &std::path::Path, dir: &std::path::Path, img: &str) -> Result<String, String> {
    if img.starts_with('/') {
        return Err(format!("{img} is absolute: name it relative to the spec"));
    }
    let p = std::fs::canonicalize(dir.join(img)).map_err(|e| format!("{img}: {e}"))?;
    if !p.starts_with(root) {
        return Err(format!("{img} leads outside {}", root.display()));
    }
    let m = std::fs::metadata(&p).map_err(|e| format!("{img}: {e}"))?;
    if !m.file_type().is_file() {
        return Err(format!("{img} is not a regular file"));
    }
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{img}: the path is not UTF-8"))
}

/// Read every image the spec names, once each. `resolve` turns the spec's relative path into
/// the file to read (or says why it cannot). Keyed by the path as the spec writes it.
pub fn inspect_spec(
    spec: &crate::spec::types::Spec,
    r: &dyn Runner,
    resolve: &dyn Fn(&str) -> Result<String, String>,
) -> BTreeMap<String, ImageFact> {
    let mut out = BTreeMap::new();
    for vg in spec.volume_groups.values() {
        for lv in vg.lvs.values() {
            let Some(img) = &lv.image else { continue };
            if out.contains_key(&img.value) {
                continue;
            }
            let fact = match resolve(&img.value) {
                Ok(p) => inspect(r, &p),
                Err(e) => ImageFact::Unreadable(e),
            };
            out.insert(img.value.clone(), fact);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::fixtures::{runner, text};

    #[test]
    fn qcow2_vmdk_and_raw_give_their_format_and_exact_virtual_size() {
        for (f, fmt) in [
            ("fw.qcow2", "qcow2"),
            ("fw.vmdk", "vmdk"),
            ("fw.raw", "raw"),
        ] {
            let i = parse_info(f, &text(&format!("image/{f}.json"))).unwrap();
            assert_eq!(i.format, fmt);
            assert_eq!(i.virtual_size, 10 << 20, "{f}");
            assert_eq!(i.unsafe_because, None, "{f}");
        }
    }

    /// Real images made by qemu-img that name another file: each is judged unsafe, with
    /// the file it names.
    #[test]
    fn images_that_name_another_file_are_unsafe_whatever_the_way() {
        for (f, why) in [
            ("overlay.qcow2", "backing-filename fw.qcow2"),
            ("datafile.qcow2", "data-file fw.raw"),
            ("passwd.vmdk", "file /etc/passwd"),
            ("split.vmdk", "file split-s001.vmdk"),
        ] {
            let i = parse_info(f, &text(&format!("image/{f}.json"))).unwrap();
            let u = i.unsafe_because.unwrap_or_default();
            assert!(u.starts_with("it names another file: "), "{f}: {u}");
            assert!(u.contains(why), "{f}: {u}");
        }
    }

    #[test]
    fn an_unknown_format_or_a_pseudo_file_is_unsafe() {
        let j = text("image/fw.raw.json");
        let i = parse_info(
            "x",
            &j.replace("\"format\": \"raw\"", "\"format\": \"host_device\""),
        )
        .unwrap();
        assert!(
            i.unsafe_because
                .unwrap()
                .contains("format host_device is not one")
        );
        let i = parse_info("x", &j.replace("\"fw.raw\"", "\"nbd:localhost:10809\"")).unwrap();
        assert!(i.unsafe_because.unwrap().contains("not a plain file"));
    }

    #[test]
    fn the_conversion_source_names_driver_and_file_and_cuts_the_backing_chain() {
        let i = parse_info("/r/a \"b\".qcow2", &text("image/fw.qcow2.json")).unwrap();
        let src = convert_source(&i);
        let v: serde_json::Value =
            serde_json::from_str(src.strip_prefix("json:").unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"backing": null, "driver": "qcow2",
                "file": {"driver": "file", "filename": "/r/a \"b\".qcow2"}})
        );
    }

    #[test]
    fn resolve_wants_a_regular_file_inside_the_repository() {
        let t = std::env::temp_dir().join(format!("hostform-img-{}", std::process::id()));
        let repo = t.join("repo");
        std::fs::create_dir_all(repo.join("images")).unwrap();
        std::fs::write(repo.join("images/a.raw"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", repo.join("images/out.raw")).unwrap();
        std::os::unix::fs::symlink("/dev/null", repo.join("images/dev.raw")).unwrap();
        std::fs::write(t.join("outside.raw"), b"x").unwrap();
        let root = std::fs::canonicalize(&repo).unwrap();
        let ok = resolve(&root, &root, "images/a.raw").unwrap();
        assert_eq!(ok, root.join("images/a.raw").to_str().unwrap());
        for bad in [
            "images/out.raw",
            "../outside.raw",
            "/etc/passwd",
            "images",
            "nope.raw",
        ] {
            assert!(resolve(&root, &root, bad).is_err(), "{bad}");
        }
        // A link that stays inside the repository, to a regular file, is followed.
        std::os::unix::fs::symlink("../images/a.raw", repo.join("images/in.raw")).unwrap();
        assert!(resolve(&root, &root, "images/in.raw").is_ok());
        let _ = std::fs::remove_dir_all(&t);
    }

    #[test]
    fn a_missing_image_is_unreadable_with_qemu_img_s_reason() {
        let r = runner("image");
        assert_eq!(
            inspect(&r, "missing.qcow2"),
            ImageFact::Unreadable(
                "Could not open 'missing.qcow2': Could not open 'missing.qcow2': No such file or directory".into()
            )
        );
        assert!(matches!(inspect(&r, "fw.vmdk"), ImageFact::Read(i) if i.format == "vmdk"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_info("x", "").is_err());
        assert!(parse_info("x", "{\"virtual-size\": -1}").is_err());
        assert!(parse_info("x", "[]").is_err());
    }
}
