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
    /// `qcow2`, `vmdk`, `raw`…: passed to `qemu-img convert -f`, never probed again.
    pub format: String,
    /// The disk's size as a guest sees it, in bytes: the LV's size before rounding to extents.
    pub virtual_size: u64,
    /// Set when the image depends on another file (a qcow2 overlay): refused, the import must
    /// be of one self-contained file of the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backing_file: Option<String>,
}

/// An image of the spec as read at plan time: its information, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFact {
    Read(ImageInfo),
    Unreadable(String),
}

#[derive(Deserialize)]
struct QemuImgInfo {
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    format: String,
    #[serde(rename = "backing-filename", default)]
    backing_filename: Option<String>,
}

/// Parse `qemu-img info --output=json` of one image.
pub fn parse_info(path: &str, json: &str) -> Result<ImageInfo, String> {
    let i: QemuImgInfo = serde_json::from_str(json)
        .map_err(|e| format!("unexpected `qemu-img info --output=json` output: {e}"))?;
    if i.virtual_size == 0 {
        return Err("its virtual size is 0 bytes".into());
    }
    Ok(ImageInfo {
        path: path.to_string(),
        format: i.format,
        virtual_size: i.virtual_size,
        backing_file: i.backing_filename,
    })
}

/// Read one image with `qemu-img info`.
pub fn inspect(r: &dyn Runner, path: &str) -> ImageFact {
    match r.run(&["qemu-img", "info", "--output=json", path]) {
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
            assert_eq!(i.backing_file, None);
        }
    }

    #[test]
    fn an_overlay_names_its_backing_file() {
        let i = parse_info("overlay.qcow2", &text("image/overlay.qcow2.json")).unwrap();
        assert_eq!(i.backing_file.as_deref(), Some("fw.qcow2"));
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
