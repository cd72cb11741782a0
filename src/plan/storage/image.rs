//! LVs made from disk images: sized from the image, filled with `qemu-img convert`.

use super::*;
use crate::kinds::lvm::IMAGE_TAG;

/// The image of an LV, read at plan time, and the LV size it needs: its virtual size rounded
/// up to whole extents. Refused (None) when it cannot be read or is not self-contained.
pub(super) fn image_lv_size<'f>(
    c: &mut Ctx<'f>,
    res: &str,
    lv: &crate::spec::types::Lv,
    extent: u64,
) -> Option<(&'f crate::kinds::image::ImageInfo, u64)> {
    use crate::kinds::image::ImageFact;
    let img = lv.image.as_ref()?;
    let facts: &'f Facts = c.facts;
    match facts.images.get(&img.value) {
        Some(ImageFact::Read(i)) if i.unsafe_because.is_none() => {
            Some((i, i.virtual_size.div_ceil(extent) * extent))
        }
        Some(ImageFact::Read(i)) => {
            c.refuse(
                res,
                format!(
                    "image {img} is refused: {}",
                    i.unsafe_because.as_deref().unwrap_or("")
                ),
                "import one self-contained file of the repository (raw, qcow2 without backing or data file, a monolithic vmdk…): `qemu-img convert -O qcow2` what you have into a new file, after checking what it names",
            );
            None
        }
        Some(ImageFact::Unreadable(e)) => {
            c.refuse(
                res,
                format!("image {img} cannot be read: {e}"),
                "the image must exist (relative to the spec, inside its repository) and qemu-img must read it",
            );
            None
        }
        None => {
            c.refuse(
                res,
                format!("image {img} was not read before planning"),
                "plan with `hostform plan`, which reads the spec's images",
            );
            None
        }
    }
}

/// An LV made from an image: created at the image's size (rounded up to extents), then the
/// image written into it by `qemu-img convert`. Only ever into an LV this plan creates.
pub(super) fn image_lv_create(
    c: &mut Ctx,
    vgname: &str,
    lvname: &str,
    lv: &crate::spec::types::Lv,
    extent: u64,
    after_vg: &[OpId],
) {
    let res = format!("lv {vgname}/{lvname}");
    let key = format!("{vgname}/{lvname}");
    let Some((info, size)) = image_lv_size(c, &res, lv, extent) else {
        return;
    };
    let img = lv
        .image
        .as_ref()
        .map(|i| i.value.clone())
        .unwrap_or_default();
    let mut argv = vec![
        s("lvcreate"),
        s("--quiet"),
        s("--yes"),
        s("-n"),
        lvname.to_string(),
        s("-L"),
        format!("{size}b"),
        vgname.to_string(),
    ];
    if let Some(pv) = &lv.pv
        && let Some(p) = c.device_path(&pv.value)
    {
        argv.push(p);
    }
    let rounded = if size == info.virtual_size {
        String::new()
    } else {
        format!(
            ", rounded up to {} extents",
            crate::spec::units::Size(extent)
        )
    };
    let id = c.add(
        Op::run(
            OpId::new(50, Address::lv_key(&key), Verb::Create),
            &res,
            format!(
                "create {key} ({size} bytes: {img} is {} bytes{rounded})",
                info.virtual_size
            ),
            argv,
        )
        .on_root()
        .after(after_vg.to_vec()),
    );
    let last = image_write_op(c, &res, &key, info, &img, vec![id]);
    if lv.readonly {
        c.add(
            Op::run(
                OpId::new(58, Address::lv_key(&key), Verb::Permission),
                &res,
                format!("make {key} read-only"),
                vec![s("lvchange"), s("--quiet"), s("-p"), s("r"), key.clone()],
            )
            .on_root()
            .after(vec![last]),
        );
    }
    c.change(&res, Action::Create, format!("no such LV: made from {img}"));
}

/// `qemu-img convert` of the image into the LV: raw, over the existing device (`-n`: it is
/// not created), the source given as `json:` with its driver and file and no backing (never
/// probed, and nothing the image names is followed), writing through to the device (`-t
/// none`: no page cache, so the data is on the LV when it exits).
pub(super) fn image_write_op(
    c: &mut Ctx,
    res: &str,
    key: &str,
    info: &crate::kinds::image::ImageInfo,
    img: &str,
    after: Vec<OpId>,
) -> OpId {
    let id = c.add(
        Op::run(
            OpId::new(56, Address::lv_key(key), Verb::Image),
            res,
            format!("write {img} ({}) into {key}", info.format),
            vec![
                s("qemu-img"),
                s("convert"),
                s("-n"),
                s("-t"),
                s("none"),
                s("-O"),
                s("raw"),
                crate::kinds::image::convert_source(info),
                format!("/dev/{key}"),
            ],
        )
        .after(after),
    );
    // The op just pushed (found without a scan of every op, once per image LV).
    if let Some(o) = c.ops.last_mut() {
        // udev reads what the image put there (a partition table, a filesystem) once it is
        // written; the verification after apply sees it.
        o.settle = true;
    }
    // Once written, the LV is tagged: an image holding nothing a signature names (a blank
    // disk) leaves the LV looking as it was, and would be written again at every apply.
    c.add(
        Op::run(
            OpId::new(56, Address::lv_key(key), Verb::Imaged),
            res,
            format!("tag {key} {IMAGE_TAG} (holds its image)"),
            addtag_argv(IMAGE_TAG, key),
        )
        .on_root()
        .after(vec![id.clone()]),
    );
    id
}

/// An existing LV the spec makes from an image: adopted when its size is the image's (rounded
/// up to extents), refused otherwise. If it holds nothing at all (no partition table, no
/// filesystem) and has no image tag (an import interrupted after lvcreate), the image is
/// written again: the LV was seen blank, and only this spec's image goes there. Returns
/// false when refused.
pub(super) fn image_lv_existing(
    c: &mut Ctx,
    p: &LvPlan,
    cur: &crate::kinds::lvm::Lv,
    reasons: &mut Vec<String>,
) -> bool {
    let LvPlan {
        vgname,
        lvname,
        lv,
        extent,
        after_vg,
        ..
    } = *p;
    let res = format!("lv {vgname}/{lvname}");
    let key = format!("{vgname}/{lvname}");
    let Some((info, size)) = image_lv_size(c, &res, lv, extent) else {
        return false;
    };
    if cur.size != size {
        c.refuse(
            &res,
            format!(
                "is {} bytes, its image {} needs {size}",
                cur.size,
                lv.image.as_ref().map(|i| i.value.as_str()).unwrap_or("")
            ),
            "hostform writes an image only into an LV it creates: check which LV this is, fix the spec, or remove the LV by hand to import it again",
        );
        return false;
    }
    let dm = crate::kinds::lvm::dm_name(vgname, lvname);
    let blank = !cur.tags.iter().any(|t| t == IMAGE_TAG)
        && c.facts
            .blocks
            .by_name(&dm)
            .is_some_and(|b| b.fstype.is_none() && b.pttype.is_none());
    if blank && cur.active && !cur.readonly {
        let img = lv
            .image
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default();
        image_write_op(c, &res, &key, info, &img, after_vg.to_vec());
        reasons.push(format!("holds nothing: {img} is written into it"));
    }
    true
}
