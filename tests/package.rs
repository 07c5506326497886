//! The Debian packages (`scripts/package.sh`): built from the test build's
//! binaries, unpacked into a scratch root (`dpkg-deb -x`), their contents
//! and control files checked, the systemd unit verified by
//! `systemd-analyze`, and the packaged server started as its unit would
//! start it: its own unprivileged user (when the test runs as root), its
//! paths, the packaged config.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use protocol::message::ServerMessage;
use socket_chatroom_tests::{DEADLINE, Proc, RawClient, bin_dir};

/// Runs `cmd`; panics with its output unless it succeeds. Returns stdout.
fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{what}: {}\n{}{}", out.status, text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// The two packages, built once per test from the binaries of this build.
struct Debs {
    dir: tempfile::TempDir,
    server: PathBuf,
    client: PathBuf,
}

fn build_debs() -> Debs {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package.sh");
    let out = run(
        "scripts/package.sh",
        Command::new("bash").arg(&script).arg("--bin-dir").arg(bin_dir()).arg("--out").arg(dir.path().join("debs")),
    );
    let find = |name: &str| {
        out.lines()
            .map(PathBuf::from)
            .find(|p| p.file_name().is_some_and(|f| f.to_string_lossy().starts_with(&format!("{name}_"))))
            .unwrap_or_else(|| panic!("package.sh did not name a {name} package: {out}"))
    };
    Debs { server: find("socket-chatroom-server"), client: find("socket-chatroom-client"), dir }
}

/// `dpkg-deb -x` into `root`.
fn unpack(deb: &Path, root: &Path) {
    run("dpkg-deb -x", Command::new("dpkg-deb").arg("-x").arg(deb).arg(root));
}

/// A control field of `deb`.
fn field(deb: &Path, name: &str) -> String {
    run("dpkg-deb -f", Command::new("dpkg-deb").arg("-f").arg(deb).arg(name)).trim().to_owned()
}

/// A maintainer script or control file of `deb`.
fn control_file(deb: &Path, name: &str) -> String {
    run("dpkg-deb -I", Command::new("dpkg-deb").arg("-I").arg(deb).arg(name))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

/// The directives of a unit, as `key=value` lines (comments dropped).
fn directives(unit: &str) -> Vec<&str> {
    unit.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('[')).collect()
}

#[test]
fn the_server_package_holds_a_hardened_service() {
    let debs = build_debs();
    let deb = &debs.server;
    assert_eq!(field(deb, "Package"), "socket-chatroom-server");
    assert!(field(deb, "Depends").contains("passwd"), "postinst runs useradd");
    let root = debs.dir.path().join("root");
    unpack(deb, &root);

    let binary = root.join("usr/bin/socket-chatroom-server");
    assert_eq!(mode(&binary), 0o755);
    let config = root.join("etc/socket-chatroom/config.toml");
    assert_eq!(mode(&config), 0o600, "the config may hold the password");
    assert_eq!(control_file(deb, "conffiles").trim(), "/etc/socket-chatroom/config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    for line in [
        "key_file = \"/var/lib/socket-chatroom/server.key\"",
        "identity_file = \"/var/lib/socket-chatroom/server_identity.pem\"",
    ] {
        assert!(text.lines().any(|l| l == line), "config lacks {line:?}");
    }

    // The maintainer scripts parse, and postinst makes the static user and
    // gives it the config, mode 0600.
    for script in ["postinst", "prerm", "postrm"] {
        let body = control_file(deb, script);
        let path = debs.dir.path().join(script);
        std::fs::write(&path, &body).expect("write script");
        run(&format!("sh -n {script}"), Command::new("sh").arg("-n").arg(&path));
    }
    let postinst = control_file(deb, "postinst");
    for needle in
        ["useradd --system", "user=socket-chatroom", "chown \"$user:$user\" \"$config\"", "chmod 0600 \"$config\""]
    {
        assert!(postinst.contains(needle), "postinst lacks {needle:?}:\n{postinst}");
    }

    // The unit: its user, its state directory, hardened, reload = SIGHUP.
    let unit_path = root.join("usr/lib/systemd/system/socket-chatroom-server.service");
    let unit = std::fs::read_to_string(&unit_path).expect("unit");
    let d = directives(&unit);
    for want in [
        "User=socket-chatroom",
        "ExecStart=/usr/bin/socket-chatroom-server --config /etc/socket-chatroom/config.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=socket-chatroom",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "PrivateTmp=yes",
    ] {
        assert!(d.contains(&want), "the unit lacks {want:?}:\n{unit}");
    }
    // systemd checks it as written; only the binary's path points into the
    // scratch root (it is not installed on this machine). Any warning fails.
    let checked = debs.dir.path().join("socket-chatroom-server.service");
    std::fs::write(&checked, unit.replace("/usr/bin/socket-chatroom-server", &binary.display().to_string()))
        .expect("write unit");
    let out = Command::new("systemd-analyze").arg("verify").arg(&checked).output().expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {}\n{stderr}", out.status);
    let out = run(
        "systemd-analyze security",
        Command::new("systemd-analyze").args(["security", "--offline=yes", "--no-pager"]).arg(&checked),
    );
    let exposure: f64 = out
        .lines()
        .find_map(|l| l.split("Overall exposure level for socket-chatroom-server.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    assert!(exposure <= 2.0, "exposure {exposure} (systemd: ≤ 2 is \"OK\"):\n{out}");
}

/// The user the packaged server runs as here: `nobody` stands in for
/// `socket-chatroom` (creating a user would change this machine) when the
/// test runs as root; otherwise the test's own user.
fn service_user() -> Option<(u32, u32)> {
    let me = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    (me == 0).then_some((65534, 65534))
}

/// The packaged server's command line, as the unit runs it.
fn as_service(binary: &Path, args: &[&str], workdir: &Path) -> Command {
    let mut cmd = match service_user() {
        Some((uid, gid)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .args(["--clear-groups", "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"])
                .arg(binary);
            c
        }
        None => Command::new(binary),
    };
    cmd.args(args).current_dir(workdir).env_clear().env("PATH", "/usr/bin:/bin");
    cmd
}

#[test]
fn the_packaged_server_starts_as_its_unit_would() {
    let debs = build_debs();
    let root = debs.dir.path().join("root");
    unpack(&debs.server, &root);
    // The unprivileged user must reach into the scratch root.
    for p in [debs.dir.path(), root.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let (uid, gid) = service_user().unwrap_or_else(|| {
        let m = std::fs::metadata("/proc/self").expect("/proc/self");
        (m.uid(), m.gid())
    });
    // What postinst and StateDirectory= do: the config and the state
    // directory belong to the service user.
    let state = root.join("var/lib/socket-chatroom");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod state");
    let config = root.join("etc/socket-chatroom/config.toml");
    let packaged = std::fs::read_to_string(&config).expect("config");
    // The packaged config, with its paths moved into the scratch root and
    // loopback on port 0 instead of every interface on 7878.
    let text = packaged
        .replace("/var/lib/socket-chatroom", &state.display().to_string())
        .replace("bind = \"0.0.0.0:7878\"", "bind = \"127.0.0.1:0\"");
    assert_ne!(text, packaged);
    std::fs::write(&config, text).expect("write config");
    if service_user().is_some() {
        std::os::unix::fs::chown(&state, Some(uid), Some(gid)).expect("chown state");
        std::os::unix::fs::chown(&config, Some(uid), Some(gid)).expect("chown config");
    }
    let binary = root.join("usr/bin/socket-chatroom-server");
    let config_arg = config.display().to_string();

    let mut server = Proc::spawn("packaged server", as_service(&binary, &["--config", &config_arg], &state));
    let line = server.expect_contains("listening on ");
    let addr: std::net::SocketAddr =
        line.rsplit(' ').next().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("no address in {line:?}"));

    // The service made its own keys: its user's, mode 0600.
    for name in ["server.key", "server_identity.pem"] {
        let p = state.join(name);
        let m = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!((m.uid(), m.gid(), m.permissions().mode() & 0o777), (uid, gid, 0o600), "{name}");
    }
    let key = std::fs::read_to_string(state.join("server.key")).expect("key").trim().to_owned();
    RawClient::login(addr, &key, "alice", None).expect("a login to the packaged server");

    // Key rotation as the README says: gen-key as the service user, then
    // `systemctl reload` (SIGHUP). The new key is its user's too.
    let out = run("gen-key", &mut as_service(&binary, &["--config", &config_arg, "gen-key"], &state));
    let new_key = out.trim().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(std::fs::metadata(state.join("server.key")).expect("key").uid(), uid);
    server.signal("HUP");
    let end = Instant::now() + DEADLINE;
    loop {
        match RawClient::login(addr, &new_key, "bob", None) {
            Ok(_) => break,
            Err(ServerMessage::Error { detail }) if Instant::now() < end => {
                // Still the old key until the SIGHUP is handled.
                assert!(detail.contains("key"), "{detail}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("login with the rotated key: {e:?}"),
        }
    }
}

/// Every shared library a client binary names (linked or loaded at run
/// time), by its name without version.
fn libraries(binary: &Path) -> std::collections::BTreeSet<String> {
    let bytes = std::fs::read(binary).expect("read binary");
    let mut found = std::collections::BTreeSet::new();
    let name_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'+';
    for (i, w) in bytes.windows(3).enumerate() {
        if w != b".so" || bytes.get(i + 3).is_some_and(|b| name_char(*b)) {
            continue;
        }
        let mut start = i;
        while start > 0 && name_char(bytes[start - 1]) {
            start -= 1;
        }
        let name = &bytes[start..i];
        // The name runs back into other text when it is not a separate
        // string: keep what starts with `lib` nearest to `.so`.
        if let Some(pos) = name.windows(3).rposition(|w| w == b"lib") {
            found.insert(String::from_utf8_lossy(&name[pos..]).into_owned());
        }
    }
    found
}

#[test]
fn the_client_package_depends_on_what_its_binaries_load() {
    let debs = build_debs();
    let deb = &debs.client;
    assert_eq!(field(deb, "Package"), "socket-chatroom-client");
    let root = debs.dir.path().join("root");
    unpack(deb, &root);
    for b in ["usr/bin/socket-chatroom-cli", "usr/bin/socket-chatroom-gui"] {
        assert_eq!(mode(&root.join(b)), 0o755, "{b}");
    }
    let desktop =
        std::fs::read_to_string(root.join("usr/share/applications/socket-chatroom.desktop")).expect("desktop");
    for line in ["Exec=socket-chatroom-gui", "Icon=socket-chatroom", "Type=Application"] {
        assert!(desktop.lines().any(|l| l == line), "desktop file lacks {line:?}");
    }
    let icon =
        std::fs::read_to_string(root.join("usr/share/icons/hicolor/scalable/apps/socket-chatroom.svg")).expect("icon");
    assert!(icon.contains("<svg"), "the icon is an SVG");

    // Which package holds each library (Debian 12; trixie renamed libasound).
    let provider = |lib: &str| match lib {
        "libc" | "libm" | "libpthread" | "libdl" | "librt" => Some("libc6"),
        "libgcc_s" => Some("libgcc-s1"),
        "libasound" => Some("libasound2 | libasound2t64"),
        "libX11" => Some("libx11-6"),
        "libX11-xcb" => Some("libx11-xcb1"),
        "libxcb" => Some("libxcb1"),
        "libXcursor" => Some("libxcursor1"),
        "libXi" => Some("libxi6"),
        "libxkbcommon" => Some("libxkbcommon0"),
        "libxkbcommon-x11" => Some("libxkbcommon-x11-0"),
        "libwayland-client" => Some("libwayland-client0"),
        _ => None,
    };
    let depends: Vec<String> = field(deb, "Depends").split(", ").map(str::to_owned).collect();
    let mut seen = Vec::new();
    for b in ["usr/bin/socket-chatroom-cli", "usr/bin/socket-chatroom-gui"] {
        for lib in libraries(&root.join(b)) {
            let Some(package) = provider(&lib) else {
                panic!(
                    "{b} loads {lib}.so: which Debian package holds it? Add it to Depends (scripts/package.sh) and here"
                )
            };
            assert!(
                depends.iter().any(|d| d == package),
                "{b} loads {lib}.so but Depends lacks {package}: {depends:?}"
            );
            seen.push(lib);
        }
    }
    // The scan finds what it must: ALSA, X11 and Wayland.
    for lib in ["libasound", "libX11", "libwayland-client", "libxkbcommon"] {
        assert!(seen.iter().any(|s| s == lib), "{lib} not found in the binaries: {seen:?}");
    }
}
