# Sourced by the boot benchmarks: fetch_qemu10 DIR BINARY PACKAGE... downloads PACKAGEs from
# bookworm-backports into a private apt state (a throw-away sources list and lists directory,
# so the system's apt configuration is untouched and the installed 7.2 stays) and unpacks
# them into DIR with dpkg -x, never installing them. The first PACKAGE holds BINARY (a path
# under DIR); the lib* dependencies of that package that are not installed on this host, which
# BINARY then lacks, are downloaded from bookworm and bookworm-backports and unpacked beside
# it (run it with LD_LIBRARY_PATH=DIR/usr/lib/x86_64-linux-gnu:DIR/lib/x86_64-linux-gnu).
fetch_qemu10() {
    local dir="$1" binary="$2" main="$3"
    shift 2
    local tmp opts deb dep pkg downloads=() missing=()
    local libpath="$dir/usr/lib/x86_64-linux-gnu:$dir/lib/x86_64-linux-gnu"
    tmp="$(mktemp -d)"
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$dir"
    {
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
            "http://deb.debian.org/debian bookworm main"
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
            "http://deb.debian.org/debian bookworm-backports main"
    } >"$tmp/sources.list"
    opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o Debug::NoLocking=1
          -o APT::Sandbox::User=root)
    echo "fetching $* from bookworm-backports into $dir" >&2
    apt-get "${opts[@]}" -qq update >&2 || return 1
    for pkg in "$@"; do downloads+=("$pkg/bookworm-backports"); done
    (cd "$tmp" && apt-get "${opts[@]}" -qq download "${downloads[@]}" >&2) || return 1
    for pkg in "$@"; do
        for deb in "$tmp/${pkg}"_*.deb; do dpkg -x "$deb" "$dir" || return 1; done
    done
    deb="$(echo "$tmp/${main}"_*.deb)"
    if LD_LIBRARY_PATH="$libpath" ldd "$binary" | grep -q "not found"; then
        for dep in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/^ *//; s/[ (].*//' |
            grep '^lib'); do
            dpkg-query -W -f '${Status}' "$dep" 2>/dev/null | grep -q "ok installed" ||
                missing+=("$dep")
        done
        if [ "${#missing[@]}" -gt 0 ]; then
            echo "also fetching ${missing[*]} for $binary" >&2
            (cd "$tmp" && apt-get "${opts[@]}" -qq download "${missing[@]}" >&2) || return 1
            for deb in "$tmp"/lib*.deb; do dpkg -x "$deb" "$dir"; done
        fi
    fi
    rm -rf "$tmp"
}
