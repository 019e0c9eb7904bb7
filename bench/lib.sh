# Shared by the benchmark drivers: find or build the release binary.
# Needs REPO_ROOT, TARGET_DIR, die and section from the sourcing script.

# Sets ORBIT_BIN: the given one, or a fresh `cargo build --release -p orbit`;
# prints which source it was built from.
orbit_release_binary() {
    section "orbit (release)"
    if [ -n "${ORBIT_BIN:-}" ]; then
        echo "using ORBIT_BIN=$ORBIT_BIN (not building)"
    else
        cargo build --release -p orbit
        ORBIT_BIN="$TARGET_DIR/release/orbit"
    fi
    [ -x "$ORBIT_BIN" ] || die "orbit binary not found at $ORBIT_BIN"
    if git -C "$REPO_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
        local rev
        rev=$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
        if [ -n "$(git -C "$REPO_ROOT" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ]; then
            rev="$rev+uncommitted changes in crates/"
        fi
        echo "source: $rev"
    fi
    echo "binary: $ORBIT_BIN"
}
