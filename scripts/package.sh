#!/usr/bin/env bash
# Builds the Debian packages socket-chatroom-server and socket-chatroom-client
# with dpkg-deb (Debian's own tool: nothing to install beyond dpkg).
#
#   scripts/package.sh                      release build, packages in target/debian/
#   scripts/package.sh --out DIR            packages in DIR
#   scripts/package.sh --bin-dir DIR        package the binaries already in DIR
#                                           (no build; the tests use this)
#
# Installs: sudo apt install ./target/debian/socket-chatroom-server_*.deb
# What goes where is in packaging/ and in the README ("Debian packages").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out=target/debian
bin_dir=""
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ -z "$bin_dir" ]; then
  cargo build --locked --release -p server -p client-cli -p client-iced --bins
  bin_dir=target/release
  strip_bins=1
  compress=(-Zxz)
else
  # Unstripped debug binaries are large: storing beats compressing them.
  strip_bins=0
  compress=(-Znone)
fi
for b in server client-cli client-iced; do
  [ -x "$bin_dir/$b" ] || { echo "package.sh: $bin_dir/$b is missing" >&2; exit 1; }
done

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# put SRC DEST MODE: copies a file into the staged tree.
put() {
  install -D -m "$3" "$1" "$4/$2"
  if [ "$strip_bins" = 1 ] && [ "$(head -c 4 "$1" | tail -c 3)" = ELF ]; then
    strip --strip-unneeded "$4/$2"
  fi
}

# finish DIR: md5sums, Installed-Size, then the .deb.
finish() {
  local dir=$1 name=$2
  (cd "$dir" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$dir/DEBIAN/md5sums"
  local size
  size=$(du -sk --exclude=DEBIAN "$dir" | cut -f1)
  sed -i "s/^Installed-Size: .*/Installed-Size: $size/" "$dir/DEBIAN/control"
  # Files owned by root whoever builds.
  dpkg-deb --root-owner-group "${compress[@]}" --build "$dir" "$out/${name}_${version}_${arch}.deb" >/dev/null
  echo "$out/${name}_${version}_${arch}.deb"
}

# --- socket-chatroom-server -------------------------------------------------
s=$stage/server
put "$bin_dir/server" usr/bin/socket-chatroom-server 0755 "$s"
put packaging/server/config.toml etc/socket-chatroom/config.toml 0600 "$s"
put packaging/server/socket-chatroom-server.service usr/lib/systemd/system/socket-chatroom-server.service 0644 "$s"
put README.md usr/share/doc/socket-chatroom-server/README.md 0644 "$s"
put docs/architecture.md usr/share/doc/socket-chatroom-server/architecture.md 0644 "$s"
mkdir -p "$s/DEBIAN"
for f in postinst prerm postrm; do install -m 0755 "packaging/server/$f" "$s/DEBIAN/$f"; done
echo /etc/socket-chatroom/config.toml >"$s/DEBIAN/conffiles"
cat >"$s/DEBIAN/control" <<EOF
Package: socket-chatroom-server
Version: $version
Architecture: $arch
Maintainer: Socket Chatroom <chat@example.invalid>
Installed-Size: 0
Depends: libc6, libgcc-s1, passwd
Section: net
Priority: optional
Homepage: https://example.invalid/socket-chatroom
Description: self-hosted encrypted text and voice chat (server)
 One server binary for a small group's encrypted chatroom: text over TCP,
 voice over UDP, a pre-shared key deciding who may connect, and an RSA
 identity clients pin. Runs as the systemd service socket-chatroom-server
 under its own user; keys are created in /var/lib/socket-chatroom at its
 first start; the configuration is /etc/socket-chatroom/config.toml.
EOF
finish "$s" socket-chatroom-server

# --- socket-chatroom-client -------------------------------------------------
c=$stage/client
put "$bin_dir/client-cli" usr/bin/socket-chatroom-cli 0755 "$c"
put "$bin_dir/client-iced" usr/bin/socket-chatroom-gui 0755 "$c"
put packaging/client/socket-chatroom.desktop usr/share/applications/socket-chatroom.desktop 0644 "$c"
put packaging/client/socket-chatroom.svg usr/share/icons/hicolor/scalable/apps/socket-chatroom.svg 0644 "$c"
put README.md usr/share/doc/socket-chatroom-client/README.md 0644 "$c"
mkdir -p "$c/DEBIAN"
# What the binaries link (libasound) and what winit loads at run time
# (X11 and Wayland; tests/package.rs checks this list against the binary).
cat >"$c/DEBIAN/control" <<EOF
Package: socket-chatroom-client
Version: $version
Architecture: $arch
Maintainer: Socket Chatroom <chat@example.invalid>
Installed-Size: 0
Depends: libc6, libgcc-s1, libasound2 | libasound2t64, libx11-6, libx11-xcb1, libxcb1, libxcursor1, libxi6, libxkbcommon0, libxkbcommon-x11-0, libwayland-client0
Section: net
Priority: optional
Homepage: https://example.invalid/socket-chatroom
Description: self-hosted encrypted text and voice chat (clients)
 The desktop client socket-chatroom-gui (text and voice, X11 or Wayland)
 and socket-chatroom-cli, a terminal client that is also a Unix filter for
 scripts and bots and a headless voice client.
EOF
finish "$c" socket-chatroom-client
