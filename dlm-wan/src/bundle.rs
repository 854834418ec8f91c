//! A job's bundle: the one tar archive `dlm submit` sends and the WAN manager stages on a node.
//!
//! Its first member is [`JOB_MEMBER`] (`job.json`, the [`JobSpec`]); then each file of the job
//! (the program or its C sources, then its inputs) as a flat member named by its base name, its
//! permission bits kept (an executable stays executable). Nothing else: no directories, links
//! or paths, so that a bundle unpacked into a job's directory can write nowhere else.
//! [`read_spec`] checks all of this on the receiving side; [`pack`] refuses to make a bundle
//! that would not pass it. A job's outputs come back the same way, one flat tar archive
//! ([`unpack_outputs`], for `dlm fetch`).
//!
//! A name that travels is a *flat name*: 1 to 255 of `A-Z a-z 0-9 . _ + -`, not `.` or `..`,
//! not starting with `-` (the node passes sources to dlmcc as arguments, where it would read
//! as an option).

use crate::proto::{JobSpec, Program, JOB_MEMBER};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why a bundle or an outputs archive could not be made, read or unpacked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    #[error("cannot read {path}: {source}; check that it exists and that you may read it")]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("{path} is not a regular file; a job carries files only (pack a directory into one input with tar)")]
    NotAFile { path: PathBuf },
    #[error(
        "{path}: its name cannot travel with a job (use only letters, digits and `._+-`, not starting with `-`); \
         rename or copy the file"
    )]
    BadFileName { path: PathBuf },
    #[error("{path}: `{JOB_MEMBER}` is the job's own description in its bundle; rename the file")]
    Reserved { path: PathBuf },
    #[error("{first} and {second} would both be `{name}` in the job's directory; rename one of them")]
    DuplicateFile { name: String, first: PathBuf, second: PathBuf },
    #[error("cannot build the job's archive: {0}")]
    Build(io::Error),
    #[error("{archive} is not a readable tar archive: {source}")]
    Unreadable { archive: &'static str, source: io::Error },
    #[error("the bundle does not start with `{JOB_MEMBER}` ({found}); make bundles with `dlm submit`")]
    NoSpec { found: String },
    #[error("the bundle's `{JOB_MEMBER}` is not a job description: {0}; make bundles with `dlm submit`")]
    BadSpec(serde_json::Error),
    #[error("{archive} holds `{name}`, a {kind}: only plain files may travel")]
    NotPlain { archive: &'static str, name: String, kind: String },
    #[error("{archive} holds `{name}`, which is not a flat name (letters, digits and `._+-`, no `/`, `.` or `..`)")]
    UnsafeName { archive: &'static str, name: String },
    #[error("{archive} holds `{name}` twice")]
    DuplicateMember { archive: &'static str, name: String },
    #[error("the job names {role} `{name}`, but its bundle does not hold it; add the file to the job")]
    Missing { role: &'static str, name: String },
    #[error("{role} `{name}` is not a flat name (letters, digits and `._+-`, no `/`, `.` or `..`); name a file in the program's directory")]
    BadName { role: &'static str, name: String },
    #[error("the job builds no program: its dlmcc sources are empty; give one C file")]
    NoSources,
    #[error("the job asks for 0 bytes of memory; give its size (`dlm submit -m 4G`)")]
    NoMemory,
    #[error("cannot write {path}: {source}; check that the directory exists and that you may write there")]
    WriteOutput { path: PathBuf, source: io::Error },
}

/// What the errors call a job's bundle and its outputs.
const BUNDLE: &str = "the bundle";
const OUTPUTS: &str = "the job's outputs archive";

/// The longest flat name (a file name's limit on Linux).
const NAME_MAX: usize = 255;

/// Whether `name` is a flat name (see the module's documentation).
pub fn is_flat_name(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && name != "."
        && name != ".."
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
}

/// The bundle of a job: `spec` as `job.json`, then `files` (local paths; each becomes the
/// member named by its base name, with its permission bits).
pub fn pack(spec: &JobSpec, files: &[PathBuf]) -> Result<Vec<u8>, BundleError> {
    let mut names: HashMap<String, &PathBuf> = HashMap::new();
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name == JOB_MEMBER {
            return Err(BundleError::Reserved { path: path.clone() });
        }
        if !is_flat_name(name) {
            return Err(BundleError::BadFileName { path: path.clone() });
        }
        if let Some(first) = names.insert(name.to_string(), path) {
            let (first, second) = (first.clone(), path.clone());
            return Err(BundleError::DuplicateFile { name: name.to_string(), first, second });
        }
        let metadata = fs::metadata(path).map_err(|source| BundleError::ReadFile { path: path.clone(), source })?;
        if !metadata.is_file() {
            return Err(BundleError::NotAFile { path: path.clone() });
        }
    }
    check_spec(spec, |name| names.contains_key(name))?;
    let json = serde_json::to_vec_pretty(spec).map_err(BundleError::BadSpec)?;
    let mut builder = tar::Builder::new(Vec::new());
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    append(&mut builder, JOB_MEMBER, &json, 0o644, now).map_err(BundleError::Build)?;
    for path in files {
        let read = |source| BundleError::ReadFile { path: path.clone(), source };
        let metadata = fs::metadata(path).map_err(read)?;
        // Read whole: a file that changes while it is archived cannot then break the archive.
        let data = fs::read(path).map_err(read)?;
        let mtime = metadata.modified().ok().and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok());
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        append(&mut builder, name, &data, metadata.permissions().mode() & 0o777, mtime.map_or(now, |d| d.as_secs()))
            .map_err(BundleError::Build)?;
    }
    builder.into_inner().map_err(BundleError::Build)
}

fn append(builder: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8], mode: u32, mtime: u64) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_mtime(mtime);
    builder.append_data(&mut header, name, data)
}

/// The job description of a bundle, once the bundle is checked: `job.json` first and valid;
/// every member a plain file with a flat name, none twice; every file the description names
/// (program, sources, inputs) present; its outputs flat names; its memory not 0.
pub fn read_spec(bundle: &[u8]) -> Result<JobSpec, BundleError> {
    let unreadable = |source| BundleError::Unreadable { archive: BUNDLE, source };
    let mut archive = tar::Archive::new(bundle);
    let mut entries = archive.entries().map_err(unreadable)?;
    let mut first = match entries.next() {
        None => return Err(BundleError::NoSpec { found: "it is empty".into() }),
        Some(entry) => entry.map_err(unreadable)?,
    };
    let first_name = String::from_utf8_lossy(&first.path_bytes()).into_owned();
    if first_name != JOB_MEMBER || !first.header().entry_type().is_file() {
        return Err(BundleError::NoSpec { found: format!("its first member is `{first_name}`") });
    }
    let mut json = Vec::new();
    first.read_to_end(&mut json).map_err(unreadable)?;
    drop(first);
    let spec: JobSpec = serde_json::from_slice(&json).map_err(BundleError::BadSpec)?;
    let mut names = vec![JOB_MEMBER.to_string()];
    for entry in entries {
        let entry = entry.map_err(unreadable)?;
        names.push(plain_member(BUNDLE, &entry, &names)?);
    }
    check_spec(&spec, |name| names[1..].iter().any(|n| n == name))?;
    Ok(spec)
}

/// The name of a member that is a plain file with a flat name not in `seen`.
fn plain_member<R: Read>(
    archive: &'static str,
    entry: &tar::Entry<'_, R>,
    seen: &[String],
) -> Result<String, BundleError> {
    let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let kind = entry.header().entry_type();
    if !kind.is_file() {
        let kind = match kind {
            tar::EntryType::Directory => "directory".to_string(),
            tar::EntryType::Symlink => "symbolic link".to_string(),
            tar::EntryType::Link => "hard link".to_string(),
            other => format!("tar entry of type {:?}", other.as_byte() as char),
        };
        return Err(BundleError::NotPlain { archive, name, kind });
    }
    if !is_flat_name(&name) {
        return Err(BundleError::UnsafeName { archive, name });
    }
    if seen.contains(&name) {
        return Err(BundleError::DuplicateMember { archive, name });
    }
    Ok(name)
}

/// The checks of a description against the names of the files that travel with it.
fn check_spec(spec: &JobSpec, holds: impl Fn(&str) -> bool) -> Result<(), BundleError> {
    if spec.memory_bytes == 0 {
        return Err(BundleError::NoMemory);
    }
    let mut needed: Vec<(&'static str, &str)> = Vec::new();
    match &spec.program {
        Program::Executable { file } => needed.push(("the program", file)),
        Program::Dlmcc { sources, name, .. } => {
            if sources.is_empty() {
                return Err(BundleError::NoSources);
            }
            if !is_flat_name(name) {
                return Err(BundleError::BadName { role: "the program's name", name: name.clone() });
            }
            needed.extend(sources.iter().map(|s| ("the C source", s.as_str())));
        }
    }
    needed.extend(spec.inputs.iter().map(|i| ("the input", i.as_str())));
    for (role, name) in needed {
        if !holds(name) {
            return Err(BundleError::Missing { role, name: name.to_string() });
        }
    }
    match spec.outputs.iter().find(|o| !is_flat_name(o)) {
        Some(output) => Err(BundleError::BadName { role: "the output", name: output.clone() }),
        None => Ok(()),
    }
}

/// `dlm fetch`: writes each member of a job's outputs archive into `dir` (made if missing,
/// files there of the same names replaced) with its permission bits, and returns the paths
/// written, in the archive's order. The whole archive is checked first (plain files with flat
/// names, none twice): one that is not writes nothing.
pub fn unpack_outputs(archive: &[u8], dir: &Path) -> Result<Vec<PathBuf>, BundleError> {
    let unreadable = |source| BundleError::Unreadable { archive: OUTPUTS, source };
    let mut names = Vec::new();
    for entry in tar::Archive::new(archive).entries().map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        names.push(plain_member(OUTPUTS, &entry, &names)?);
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    fs::create_dir_all(dir).map_err(|source| BundleError::WriteOutput { path: dir.to_path_buf(), source })?;
    let mut written = Vec::new();
    for entry in tar::Archive::new(archive).entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let path = dir.join(String::from_utf8_lossy(&entry.path_bytes()).as_ref());
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(unreadable)?;
        write_file(&path, &data, mode).map_err(|source| BundleError::WriteOutput { path: path.clone(), source })?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `data` to `path`, replacing a file there but never following a symbolic link.
fn write_file(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(data)?;
    // An existing file keeps its mode through open: give it the output's.
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Mode;

    fn spec(program: Program) -> JobSpec {
        JobSpec {
            program,
            args: vec!["-n".into(), "64".into()],
            memory_bytes: 4 << 30,
            mode: Mode::LocalFirst,
            user: None,
            inputs: vec!["input.dat".into()],
            outputs: vec!["result.dat".into()],
            place: None,
        }
    }

    fn write(dir: &Path, name: &str, data: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, data).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// Each member of a tar archive: name, type, mode and contents.
    fn members(archive: &[u8]) -> Vec<(String, tar::EntryType, u32, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in tar::Archive::new(archive).entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            out.push((name, entry.header().entry_type(), entry.header().mode().unwrap(), data));
        }
        out
    }

    /// A tar archive of raw members (name, type, data), as a careless or hostile tool makes.
    fn raw_archive(members: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            // Written by hand: `append_data` itself refuses some of these names (`..`).
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn spec_json(spec: &JobSpec) -> Vec<u8> {
        serde_json::to_vec(spec).unwrap()
    }

    #[test]
    fn a_bundle_round_trips_with_its_modes() {
        let dir = tempfile::tempdir().unwrap();
        let sim = write(dir.path(), "sim", b"\x7fELF...", 0o755);
        let input = write(dir.path(), "input.dat", b"1 2 3\n", 0o640);
        let spec = spec(Program::Executable { file: "sim".into() });
        let bundle = pack(&spec, &[sim, input]).unwrap();
        let got = members(&bundle);
        let names: Vec<&str> = got.iter().map(|m| m.0.as_str()).collect();
        assert_eq!(names, ["job.json", "sim", "input.dat"]);
        assert!(got.iter().all(|m| m.1 == tar::EntryType::Regular));
        assert_eq!((got[1].2, got[1].3.as_slice()), (0o755, b"\x7fELF...".as_slice()));
        assert_eq!((got[2].2, got[2].3.as_slice()), (0o640, b"1 2 3\n".as_slice()));
        assert_eq!(read_spec(&bundle).unwrap(), spec);

        // A name longer than the tar header's 100 bytes travels too (a GNU long-name record).
        let long = format!("{}.dat", "a".repeat(150));
        let input = write(dir.path(), &long, b"long", 0o644);
        let mut spec = spec;
        spec.inputs = vec![long.clone()];
        let bundle = pack(&spec, &[dir.path().join("sim"), input]).unwrap();
        assert_eq!(members(&bundle)[2].0, long);
        assert_eq!(read_spec(&bundle).unwrap(), spec);
    }

    #[test]
    fn a_dlmcc_bundle_carries_its_sources() {
        let dir = tempfile::tempdir().unwrap();
        let source = write(dir.path(), "himeno.c", b"int main(void) { return 0; }\n", 0o644);
        let mut spec = spec(Program::Dlmcc {
            sources: vec!["himeno.c".into()],
            cflags: vec!["-DN=64".into(), "-O3".into()],
            name: "himeno".into(),
        });
        spec.inputs.clear();
        let bundle = pack(&spec, &[source]).unwrap();
        assert_eq!(read_spec(&bundle).unwrap(), spec);
    }

    #[test]
    fn pack_refuses_what_could_not_travel() {
        let dir = tempfile::tempdir().unwrap();
        let sim = write(dir.path(), "sim", b"x", 0o755);
        fs::create_dir(dir.path().join("other")).unwrap();
        let twin = write(&dir.path().join("other"), "sim", b"y", 0o755);
        let spec = spec(Program::Executable { file: "sim".into() });
        let err = pack(&spec, &[sim.clone(), twin.clone()]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, BundleError::DuplicateFile { .. }), "{text}");
        assert!(text.contains(&sim.display().to_string()) && text.contains(&twin.display().to_string()), "{text}");

        let spaced = write(dir.path(), "my input.dat", b"", 0o644);
        assert!(matches!(pack(&spec, &[sim.clone(), spaced]), Err(BundleError::BadFileName { .. })));
        let reserved = write(dir.path(), "job.json", b"{}", 0o644);
        assert!(matches!(pack(&spec, &[sim.clone(), reserved]), Err(BundleError::Reserved { .. })));
        let err = pack(&spec, std::slice::from_ref(&sim)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the job names the input `input.dat`, but its bundle does not hold it; add the file to the job"
        );
        let err = pack(&spec, &[sim.clone(), dir.path().join("other")]).unwrap_err();
        assert!(matches!(err, BundleError::NotAFile { .. }), "{err}");
        let err = pack(&spec, &[sim, dir.path().join("input.dat")]).unwrap_err();
        assert!(matches!(err, BundleError::ReadFile { .. }), "{err}");
    }

    #[test]
    fn read_spec_checks_the_description() {
        let good = spec(Program::Executable { file: "sim".into() });
        let files: [(&str, tar::EntryType, &[u8]); 2] =
            [("sim", tar::EntryType::Regular, b"x"), ("input.dat", tar::EntryType::Regular, b"")];
        let with = |spec: &JobSpec| {
            let json = spec_json(spec);
            let mut members: Vec<(&str, tar::EntryType, &[u8])> = vec![(JOB_MEMBER, tar::EntryType::Regular, &json)];
            members.extend(files);
            read_spec(&raw_archive(&members))
        };
        assert_eq!(with(&good).unwrap(), good);
        let mut spec = good.clone();
        spec.memory_bytes = 0;
        assert!(matches!(with(&spec), Err(BundleError::NoMemory)));
        for output in ["../etc/passwd", "out/result", "..", ""] {
            let mut spec = good.clone();
            spec.outputs = vec![output.into()];
            assert!(matches!(with(&spec), Err(BundleError::BadName { role: "the output", .. })), "{output}");
        }
        let mut spec = good.clone();
        spec.program = Program::Executable { file: "other".into() };
        let err = with(&spec).unwrap_err();
        assert!(matches!(&err, BundleError::Missing { role: "the program", name } if name == "other"), "{err}");
        let mut spec = good.clone();
        spec.program = Program::Dlmcc { sources: vec!["sim".into()], cflags: vec![], name: "../x".into() };
        assert!(matches!(with(&spec), Err(BundleError::BadName { role: "the program's name", .. })));
        spec.program = Program::Dlmcc { sources: vec![], cflags: vec![], name: "x".into() };
        assert!(matches!(with(&spec), Err(BundleError::NoSources)));
    }

    #[test]
    fn read_spec_checks_the_members() {
        let json = spec_json(&spec(Program::Executable { file: "sim".into() }));
        let spec_member = (JOB_MEMBER, tar::EntryType::Regular, json.as_slice());
        let file = |name| (name, tar::EntryType::Regular, b"x".as_slice());
        let check = |members: &[(&str, tar::EntryType, &[u8])]| read_spec(&raw_archive(members)).unwrap_err();

        let err = check(&[file("sim"), spec_member]);
        assert_eq!(
            err.to_string(),
            "the bundle does not start with `job.json` (its first member is `sim`); make bundles with `dlm submit`"
        );
        assert!(matches!(check(&[]), BundleError::NoSpec { .. }));
        assert!(matches!(check(&[(JOB_MEMBER, tar::EntryType::Regular, b"{")]), BundleError::BadSpec(_)));
        for name in ["../sim", "/etc/passwd", "dir/sim", "..", "-rf", "a b"] {
            let err = check(&[spec_member, file(name), file("sim"), file("input.dat")]);
            assert!(matches!(err, BundleError::UnsafeName { archive: BUNDLE, .. }), "{name}: {err}");
        }
        let err = check(&[spec_member, (".", tar::EntryType::Directory, b""), file("sim")]);
        assert!(matches!(err, BundleError::NotPlain { .. }), "{err}");
        let err = check(&[spec_member, file("sim"), ("input.dat", tar::EntryType::Symlink, b"")]);
        assert_eq!(err.to_string(), "the bundle holds `input.dat`, a symbolic link: only plain files may travel");
        let err = check(&[spec_member, file("sim"), file("input.dat"), file("sim")]);
        assert!(matches!(err, BundleError::DuplicateMember { .. }), "{err}");
        let err = check(&[spec_member, file("sim"), file(JOB_MEMBER), file("input.dat")]);
        assert!(matches!(err, BundleError::DuplicateMember { .. }), "{err}");
        let err = read_spec(b"not a tar archive at all, and too short for one").unwrap_err();
        assert!(matches!(err, BundleError::Unreadable { .. } | BundleError::NoSpec { .. }), "{err}");
    }

    #[test]
    fn outputs_unpack_flat_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        append(&mut builder, "result.dat", b"42\n", 0o644, 0).unwrap();
        append(&mut builder, "plot.sh", b"#!/bin/sh\n", 0o755, 0).unwrap();
        let archive = builder.into_inner().unwrap();
        // A file there already is replaced; a symbolic link there is not followed.
        fs::write(dir.path().join("result.dat"), b"old, longer contents").unwrap();
        let written = unpack_outputs(&archive, &dir.path().join("out")).unwrap();
        assert_eq!(written, [dir.path().join("out/result.dat"), dir.path().join("out/plot.sh")]);
        assert_eq!(fs::read(&written[0]).unwrap(), b"42\n");
        assert_eq!(fs::metadata(&written[1]).unwrap().permissions().mode() & 0o777, 0o755);
        assert_eq!(unpack_outputs(&archive, dir.path()).unwrap().len(), 2);
        assert_eq!(fs::read(dir.path().join("result.dat")).unwrap(), b"42\n");

        let target = write(dir.path(), "target", b"keep", 0o644);
        std::os::unix::fs::symlink(&target, dir.path().join("link")).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        append(&mut builder, "link", b"overwritten", 0o644, 0).unwrap();
        let err = unpack_outputs(&builder.into_inner().unwrap(), dir.path()).unwrap_err();
        assert!(matches!(err, BundleError::WriteOutput { .. }), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"keep");

        assert!(unpack_outputs(&raw_archive(&[]), &dir.path().join("none")).unwrap().is_empty());
        assert!(!dir.path().join("none").exists());
    }

    #[test]
    fn outputs_with_a_bad_member_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for (name, kind) in [("../escape", tar::EntryType::Regular), ("sub", tar::EntryType::Directory)] {
            let archive = raw_archive(&[("fine.dat", tar::EntryType::Regular, b"x"), (name, kind, b"")]);
            let err = unpack_outputs(&archive, dir.path()).unwrap_err();
            assert!(err.to_string().starts_with(&format!("the job's outputs archive holds `{name}`")), "{err}");
            assert!(!dir.path().join("fine.dat").exists());
        }
    }
}
