#!/usr/bin/env bash
# Ready to publish: every publishable crate packages, its package holds what it must (license
# files, README, changelog) and nothing it must not, and each packaged crate builds on its own
# against the others as packaged (the way crates.io will see them).
#
#   bash .ci/package.sh                  # on a clean checkout (CI runs it right after a clone)
#   bash .ci/package.sh --allow-dirty    # locally, with uncommitted changes
#
# Extra arguments go to every `cargo package` call. `cargo package --workspace` packages the
# unpublished members together through a local registry overlay, and drops path-only
# dev-dependencies (bulwark-outcomes) from the packaged manifests. Crates with
# `publish = false` are left out. bulwark-testkit is published (a library for tests that
# `bulwark fake-notion` serves), so the members' dev-dependencies on it stay in their
# packages. It builds from scratch each time (see below): about two and a half minutes on two
# cores.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[package] %s\n' "$*"; }
fail() { printf 'not ok - %s\n' "$*" >&2; exit 1; }

# The root package and every member without `publish = false`.
publishable=(tower-bulwark)
unpublished=()
for manifest in crates/*/Cargo.toml; do
    name=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$manifest" | head -n 1)
    [ -n "$name" ] || fail "no package name in $manifest"
    if grep -q '^publish = false' "$manifest"; then
        unpublished+=("$name")
    else
        publishable+=("$name")
    fi
done
say "publishable: ${publishable[*]}"
say "not published: ${unpublished[*]:-none}"

# What each package ships.
for name in "${publishable[@]}"; do
    files=$(cargo package --list --locked -p "$name" "$@")
    for required in Cargo.toml Cargo.lock README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE src/lib.rs; do
        grep -qx "$required" <<<"$files" || fail "$name: $required missing from the package"
    done
    # Only sources and the top-level documents: no CI scripts, members, build output or data.
    stray=$(grep -Ev '^(\.cargo_vcs_info\.json|Cargo\.toml(\.orig)?|Cargo\.lock|README\.md|CHANGELOG\.md|LICENSE-(MIT|APACHE)|(src|tests|examples|benches)/.*\.rs)$' <<<"$files" || true)
    [ -z "$stray" ] || fail "$name: unexpected files in the package:"$'\n'"$stray"
    say "ok - $name: $(wc -l <<<"$files") files"
done

# Package and verify (build each packaged crate from its .crate) in a target directory of this
# run's own. `cargo package --workspace` serves the packaged members from a registry at
# <target>/package/tmp-registry; cargo unpacks them into $CARGO_HOME/registry/src/-<hash of
# that path>/ and, since a registry crate of a given version is taken to never change, reuses
# both that copy and its build on the next run in the same target directory: the members would
# be checked as they were when first packaged. A fresh path each run avoids both; the price is
# building the dependencies once per run.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
overlay_sources_before=$(ls -d "$cargo_home"/registry/src/-* 2>/dev/null || true)
mkdir -p target
target_dir=$(mktemp -d "$PWD/target/package-check.XXXXXX")
cleanup() {
    rm -rf "$target_dir"
    # The unpacked copies from this run's registry: a new `-<hash>` folder holding only ours.
    local dir entry ours
    for dir in "$cargo_home"/registry/src/-*; do
        [ -d "$dir" ] || continue
        grep -qxF "$dir" <<<"$overlay_sources_before" && continue
        ours=true
        for entry in "$dir"/*; do
            [[ " ${publishable[*]} " == *" $(basename "$entry" | sed 's/-[0-9][^-]*$//') "* ]] || ours=false
        done
        if $ours; then rm -rf "$dir"; fi
    done
}
trap cleanup EXIT

exclude=()
for name in ${unpublished[@]+"${unpublished[@]}"}; do
    exclude+=(--exclude "$name")
done
# Twice: with default features (what a user gets), then with all of them (what docs.rs builds,
# each crate alone, so a feature that leans on another crate's features fails here, not there).
for features in --features=default --all-features; do
    say "cargo package --workspace ${exclude[*]:-} --locked $features $*"
    cargo package --workspace ${exclude[@]+"${exclude[@]}"} --locked "$features" \
        --target-dir "$target_dir" "$@"
done
say "ok - every publishable crate packaged and verified, with default and with all features"
