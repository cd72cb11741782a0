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

    /// The full scenario's spec plus `vg0/fw` made from the captured fw.qcow2 (10 MiB).
    fn with_image(
        image_fact: Option<ImageFact>,
    ) -> (crate::spec::types::Spec, crate::discover::Facts) {
        let d = crate::discover::discover(&runner("full")).unwrap();
        let mut spec = d.spec;
        let lv = crate::spec::types::Lv {
            image: Some(crate::spec::de::Sp::bare("images/fw.qcow2".into())),
            ..Default::default()
        };
        spec.volume_groups
            .get_index_mut(0)
            .unwrap()
            .1
            .lvs
            .insert(crate::spec::de::Sp::bare("fw".into()), lv);
        let mut facts = d.facts;
        if let Some(f) = image_fact {
            facts.images.insert("images/fw.qcow2".into(), f);
        }
        (spec, facts)
    }

    fn qcow2() -> ImageFact {
        ImageFact::Read(parse_info("/repo/images/fw.qcow2", &text("image/fw.qcow2.json")).unwrap())
    }

    #[test]
    fn an_lv_from_an_image_is_sized_from_it_rounded_to_extents_then_filled() {
        let (spec, facts) = with_image(Some(qcow2()));
        let p = crate::plan::plan_host(&spec, &facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        let argv: Vec<Vec<String>> = p.ops.iter().map(|o| o.argv.clone()).collect();
        // 10 MiB rounded up to the VG's 4 MiB extents: 12 MiB.
        assert_eq!(
            argv[0],
            [
                "lvcreate",
                "--quiet",
                "--yes",
                "-n",
                "fw",
                "-L",
                "12582912b",
                "vg0"
            ]
        );
        assert_eq!(
            argv[1],
            [
                "qemu-img",
                "convert",
                "-n",
                "-t",
                "none",
                "-f",
                "qcow2",
                "-O",
                "raw",
                "/repo/images/fw.qcow2",
                "/dev/vg0/fw"
            ]
        );
        assert_eq!(p.ops[1].after, [p.ops[0].id.clone()]);
        assert!(p.ops.iter().all(|o| o.risk == crate::plan::Risk::Safe));
        assert!(
            p.ops[0].summary.contains(
                "12582912 bytes: images/fw.qcow2 is 10485760 bytes, rounded up to 4MiB extents"
            ),
            "{}",
            p.ops[0].summary
        );
    }

    #[test]
    fn an_existing_lv_is_adopted_when_its_size_matches_never_overwritten() {
        let (spec, mut facts) = with_image(Some(qcow2()));
        // dom0_swap as the image's LV: 128 MiB, not the 12 MiB the image needs: refused.
        let mut spec2 = spec.clone();
        let vg = spec2.volume_groups.get_index_mut(0).unwrap().1;
        let lv = vg.lvs.shift_remove("fw").unwrap();
        *vg.lvs.get_mut("dom0_swap").unwrap() = lv;
        let p = crate::plan::plan_host(&spec2, &facts, &Default::default());
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        assert!(
            p.refusals.iter().any(|r| r.resource == "lv vg0/dom0_swap"
                && r.reason == "is 134217728 bytes, its image images/fw.qcow2 needs 12582912"),
            "{:?}",
            p.refusals
        );
        // The same LV with the image's size and a filesystem on it (as the image left it):
        // adopted, nothing to do.
        facts.lvm.lvs.get_mut("vg0/dom0_swap").unwrap().size = 12582912;
        let p = crate::plan::plan_host(&spec2, &facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
    }

    #[test]
    fn unreadable_and_overlay_images_are_refused() {
        let (spec, facts) = with_image(Some(ImageFact::Unreadable("No such file".into())));
        let p = crate::plan::plan_host(&spec, &facts, &Default::default());
        assert!(p.ops.is_empty());
        assert!(
            p.refusals[0]
                .reason
                .contains("cannot be read: No such file")
        );
        let overlay =
            ImageFact::Read(parse_info("/o.qcow2", &text("image/overlay.qcow2.json")).unwrap());
        let (spec, facts) = with_image(Some(overlay));
        let p = crate::plan::plan_host(&spec, &facts, &Default::default());
        assert!(p.ops.is_empty());
        assert!(
            p.refusals[0].reason.contains("is an overlay of fw.qcow2"),
            "{:?}",
            p.refusals
        );
        let (spec, facts) = with_image(None);
        assert!(
            !crate::plan::plan_host(&spec, &facts, &Default::default())
                .refusals
                .is_empty()
        );
    }
}
