//! Minimal writer for the "newc" cpio format the kernel unpacks as initramfs.
//!
//! Only what an initramfs needs: directories, regular files, symlinks and
//! device nodes, all owned by root with a fixed mtime so the archive is
//! reproducible. Device nodes can be written without privileges because they
//! only exist as archive entries until the kernel unpacks them.

/// File type bits (`st_mode & S_IFMT`).
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// An in-memory newc archive being built.
#[derive(Debug, Default)]
pub struct Archive {
    buf: Vec<u8>,
    next_ino: u32,
}

impl Archive {
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            next_ino: 1,
        }
    }

    /// Adds a directory (parents must be added first).
    pub fn dir(&mut self, name: &str, perm: u32) {
        self.entry(name, S_IFDIR | (perm & 0o7777), 2, (0, 0), &[]);
    }

    /// Adds a regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | (perm & 0o7777), 1, (0, 0), data);
    }

    /// Adds a symbolic link pointing at `target`.
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes());
    }

    /// Adds a character device node.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | (perm & 0o7777), 1, (major, minor), &[]);
    }

    /// Appends the trailer and returns the archive bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.raw_entry("TRAILER!!!", 0, 0, 1, (0, 0), &[]);
        self.buf
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.raw_entry(name, ino, mode, nlink, rdev, data);
    }

    fn raw_entry(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) {
        let name = name.trim_start_matches('/');
        // The name size includes the terminating NUL.
        let namesize = name.len() + 1;
        let fields: [u32; 13] = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            namesize as u32,
            0, // check (unused by newc)
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad4();
        self.buf.extend_from_slice(data);
        self.pad4();
    }

    fn pad4(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_and_padding() {
        let mut a = Archive::new();
        a.file("/init", 0o755, b"abc");
        let bytes = a.finish();
        // 110-byte header + "init\0" = 115, padded to 116.
        assert_eq!(&bytes[0..6], b"070701");
        assert_eq!(&bytes[6..14], b"00000001");
        assert_eq!(&bytes[14..22], b"000081ED");
        assert_eq!(&bytes[54..62], b"00000003"); // filesize
        assert_eq!(&bytes[94..102], b"00000005"); // namesize
        assert_eq!(&bytes[110..115], b"init\0");
        assert_eq!(&bytes[116..119], b"abc");
        assert_eq!(bytes.len() % 4, 0);
        let trailer = &bytes[120..];
        assert_eq!(&trailer[0..6], b"070701");
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn device_node_numbers() {
        let mut a = Archive::new();
        a.char_dev("dev/console", 0o600, 5, 1);
        let bytes = a.finish();
        assert_eq!(&bytes[14..22], b"00002180");
        assert_eq!(&bytes[78..86], b"00000005");
        assert_eq!(&bytes[86..94], b"00000001");
    }
}
