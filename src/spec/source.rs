//! Where spec text comes from: a file on disk, or a file in a git repository at a revision
//! (read through libgit2, without a checkout). Either way the source is labelled
//! `path @ <short commit>` with `(modified)` when the working tree differs from it.

use std::path::{Component, Path, PathBuf};

use super::yaml::MAX_SPEC_BYTES;

/// Reads spec files (the spec, its includes, images' existence) from one place.
pub struct Reader {
    /// Directory that relative paths in labels are shown from, and that no path may escape:
    /// the repository's work tree, or the spec's directory when it is not in a repository.
    pub root: PathBuf,
    git: Option<GitAt>,
}

struct GitAt {
    repo: git2::Repository,
    commit: git2::Oid,
    /// True when reading the commit's tree (`--rev`), false when reading the work tree.
    from_tree: bool,
}

/// What one read produced.
pub struct Text {
    /// Path relative to the reader's root, with `/` separators.
    pub rel: String,
    pub text: String,
    /// ` @ 1a2b3c4` / ` @ 1a2b3c4 (modified)` / empty.
    pub suffix: String,
}

impl Reader {
    /// Open the place that holds `spec` (a path as the user typed it).
    pub fn open(spec: &Path, rev: Option<&str>) -> Result<(Reader, String), String> {
        let abs = absolute(spec)?;
        let dir = abs
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let repo = git2::Repository::discover(&dir).ok();
        let repo = match (repo, rev) {
            (Some(r), _) if r.workdir().is_some() => Some(r),
            (_, Some(rev)) => {
                return Err(format!(
                    "--rev {rev}: {} is not inside a git repository",
                    spec.display()
                ));
            }
            _ => None,
        };
        let Some(repo) = repo else {
            let rel = abs
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Ok((
                Reader {
                    root: dir,
                    git: None,
                },
                rel,
            ));
        };
        let root = repo
            .workdir()
            .map(Path::to_path_buf)
            .and_then(|w| w.canonicalize().ok())
            .ok_or("the git repository has no work tree")?;
        let rel = abs
            .strip_prefix(&root)
            .map_err(|_| {
                format!(
                    "{} is outside the repository at {}",
                    spec.display(),
                    root.display()
                )
            })?
            .to_string_lossy()
            .replace('\\', "/");
        let commit = match rev {
            Some(r) => repo
                .revparse_single(r)
                .and_then(|o| o.peel_to_commit())
                .map_err(|e| format!("--rev {r}: {}", e.message()))?
                .id(),
            None => match repo.head().and_then(|h| h.peel_to_commit()) {
                Ok(c) => c.id(),
                // A repository with no commit yet: read the file as a plain file.
                Err(_) => {
                    return Ok((Reader { root, git: None }, rel));
                }
            },
        };
        Ok((
            Reader {
                root,
                git: Some(GitAt {
                    repo,
                    commit,
                    from_tree: rev.is_some(),
                }),
            },
            rel,
        ))
    }

    /// Resolve `path` relative to the directory of `from` (a root-relative path), refusing
    /// anything that leaves the root.
    pub fn join(&self, from: &str, path: &str) -> Result<String, String> {
        if Path::new(path).is_absolute() {
            return Err(format!("`{path}` is an absolute path"));
        }
        let base = Path::new(from).parent().unwrap_or(Path::new(""));
        let mut parts: Vec<String> = Vec::new();
        for c in base.join(path).components() {
            match c {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(format!("`{path}` leads outside the repository"));
                    }
                }
                Component::CurDir => {}
                _ => return Err(format!("`{path}` is not a relative path")),
            }
        }
        if parts.is_empty() {
            return Err(format!("`{path}` names the repository itself"));
        }
        Ok(parts.join("/"))
    }

    fn work_path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn blob(&self, g: &GitAt, rel: &str) -> Result<Option<Vec<u8>>, String> {
        let commit = g
            .repo
            .find_commit(g.commit)
            .map_err(|e| e.message().to_string())?;
        let tree = commit.tree().map_err(|e| e.message().to_string())?;
        let Ok(entry) = tree.get_path(Path::new(rel)) else {
            return Ok(None);
        };
        let obj = entry
            .to_object(&g.repo)
            .map_err(|e| e.message().to_string())?;
        match obj.as_blob() {
            Some(b) if b.size() > MAX_SPEC_BYTES => Err(format!(
                "{rel} is {} bytes; a spec may be at most {MAX_SPEC_BYTES} bytes",
                b.size()
            )),
            Some(b) => Ok(Some(b.content().to_vec())),
            None => Err(format!("{rel} is a directory, not a spec file")),
        }
    }

    /// Whether a (root-relative) file exists in the source.
    pub fn exists(&self, rel: &str) -> bool {
        match &self.git {
            Some(g) if g.from_tree => g
                .repo
                .find_commit(g.commit)
                .and_then(|c| c.tree())
                .map(|t| t.get_path(Path::new(rel)).is_ok())
                .unwrap_or(false),
            _ => self.work_path(rel).exists(),
        }
    }

    /// Read a spec file, checking size and encoding.
    pub fn read(&self, rel: &str) -> Result<Text, String> {
        let bytes = match &self.git {
            Some(g) if g.from_tree => self
                .blob(g, rel)?
                .ok_or_else(|| format!("{rel} does not exist at that revision"))?,
            _ => read_file(&self.work_path(rel), rel)?,
        };
        let text = decode_text(&bytes, rel)?;
        let suffix = match &self.git {
            None => String::new(),
            Some(g) => {
                let short = short_id(&g.repo, g.commit);
                let modified = if g.from_tree {
                    // Does the work tree still hold exactly what the commit holds?
                    std::fs::read(self.work_path(rel)).ok().as_deref() != Some(bytes.as_slice())
                } else {
                    self.blob(g, rel).ok().flatten().as_deref() != Some(bytes.as_slice())
                };
                format!(" @ {short}{}", if modified { " (modified)" } else { "" })
            }
        };
        Ok(Text {
            rel: rel.to_string(),
            text,
            suffix,
        })
    }

    /// Whether the spec lives in a git repository with at least one commit.
    /// Read an included file `rel` (already joined lexically by [`Reader::join`]). In the work
    /// tree its path is canonicalized (symlinks resolved, as for images) and must stay inside
    /// the repository; the file is then opened without following a symlink, and must be a
    /// regular file. At a revision, a symlink blob is refused. A refused file is never read,
    /// so its content cannot reach a diagnostic.
    pub fn read_include(&self, rel: &str) -> Result<Text, String> {
        match &self.git {
            Some(g) if g.from_tree => {
                let commit = g
                    .repo
                    .find_commit(g.commit)
                    .map_err(|e| e.message().to_string())?;
                let tree = commit.tree().map_err(|e| e.message().to_string())?;
                if let Ok(entry) = tree.get_path(Path::new(rel))
                    && entry.filemode() == 0o120000
                {
                    return Err(format!(
                        "{rel} is a symbolic link at that revision\nhint: include regular files of the repository"
                    ));
                }
                self.read(rel)
            }
            _ => {
                let root = self
                    .root
                    .canonicalize()
                    .unwrap_or_else(|_| self.root.clone());
                let path = self.work_path(rel);
                let real = path.canonicalize().map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => format!("{rel}: no such file"),
                    _ => format!("{rel}: {e}"),
                })?;
                if !real.starts_with(&root) || real == root {
                    return Err(format!(
                        "{rel} leads outside the repository (through a symbolic link)\nhint: include regular files of the repository"
                    ));
                }
                let bytes = read_file_with(&real, rel, true)?;
                let text = decode_text(&bytes, rel)?;
                let mut t = self.read_text_suffix(rel, &bytes);
                t.text = text;
                Ok(t)
            }
        }
    }

    fn read_text_suffix(&self, rel: &str, bytes: &[u8]) -> Text {
        let suffix = match &self.git {
            None => String::new(),
            Some(g) => {
                let short = short_id(&g.repo, g.commit);
                let modified = self.blob(g, rel).ok().flatten().as_deref() != Some(bytes);
                format!(" @ {short}{}", if modified { " (modified)" } else { "" })
            }
        };
        Text {
            rel: rel.to_string(),
            text: String::new(),
            suffix,
        }
    }

    pub fn in_git(&self) -> bool {
        self.git.is_some()
    }

    /// The commit being read, in full, if any.
    pub fn commit(&self) -> Option<String> {
        self.git.as_ref().map(|g| g.commit.to_string())
    }
}

fn short_id(repo: &git2::Repository, oid: git2::Oid) -> String {
    repo.find_object(oid, None)
        .and_then(|o| o.short_id())
        .ok()
        .and_then(|b| b.as_str().ok().map(str::to_string))
        .unwrap_or_else(|| oid.to_string()[..7].to_string())
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("cannot read the current directory: {e}"))?
            .join(p)
    };
    // Canonicalize the directory (symlinks, ..) but keep the file name: with --rev the file
    // may not exist in the work tree.
    let name = abs
        .file_name()
        .ok_or_else(|| format!("{} is not a file", p.display()))?;
    let dir = abs.parent().unwrap_or(Path::new("/"));
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir.join(name))
}

fn read_file(path: &Path, shown: &str) -> Result<Vec<u8>, String> {
    read_file_with(path, shown, false)
}

/// Read a spec file: opened non-blocking (a FIFO must not hang `validate`) and, for includes,
/// without following a symlink; only a regular file is read, checked on the opened file.
fn read_file_with(path: &Path, shown: &str, nofollow: bool) -> Result<Vec<u8>, String> {
    use nix::fcntl::OFlag;
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = OFlag::O_NONBLOCK;
    if nofollow {
        flags |= OFlag::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("{shown}: no such file"),
            std::io::ErrorKind::PermissionDenied => format!("{shown}: permission denied"),
            _ if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                format!("{shown} is a symbolic link, not a regular file")
            }
            _ => format!("{shown}: {e}"),
        })?;
    let meta = file.metadata().map_err(|e| format!("{shown}: {e}"))?;
    if meta.is_dir() {
        return Err(format!("{shown} is a directory, not a spec file"));
    }
    if !meta.is_file() {
        return Err(format!(
            "{shown} is not a regular file (a FIFO, socket or device)\nhint: a spec and its includes are regular files"
        ));
    }
    if meta.len() > MAX_SPEC_BYTES as u64 {
        return Err(format!(
            "{shown} is {} bytes; a spec may be at most {MAX_SPEC_BYTES} bytes",
            meta.len()
        ));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SPEC_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{shown}: {e}"))?;
    if buf.len() > MAX_SPEC_BYTES {
        return Err(format!("{shown} is larger than {MAX_SPEC_BYTES} bytes"));
    }
    Ok(buf)
}

fn decode_text(bytes: &[u8], shown: &str) -> Result<String, String> {
    if bytes.contains(&0) {
        return Err(format!(
            "{shown} is a binary file (it contains NUL bytes), not a YAML spec"
        ));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        let good = &bytes[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        let col = good.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        format!("{shown}:{line}:{col}: the file is not valid UTF-8\nhint: save it as UTF-8")
    })
}
