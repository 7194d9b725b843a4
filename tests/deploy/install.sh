#!/bin/sh
# `cmake --install` into a fresh prefix: the program runs from there with
# the OpenMP OpenBLAS, and the Slurm templates, examples, docs, Apptainer
# definition and Lmod module are where the module and the docs say.
#   install.sh BUILD_DIR
set -eu
build=$1
d=$(mktemp -d /tmp/tl_install_XXXXXX)
trap 'rm -rf "$d"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
cmake --install "$build" --prefix "$d/prefix" > "$d/log" || { cat "$d/log"; fail "cmake --install"; }
p=$d/prefix
"$p/bin/tlsweep" version || fail "the installed tlsweep does not run"
ldd "$p/bin/tlsweep" | grep -q "openblas-openmp/libopenblas" ||
    fail "the installed tlsweep does not load the OpenMP OpenBLAS: $(ldd "$p/bin/tlsweep" | grep blas)"
for f in share/tlsweep/examples/fashion-mnist.yaml share/tlsweep/tlsweep.def \
    share/doc/tlsweep/sweep-file.md share/tlsweep/slurm/sweep.sbatch share/tlsweep/slurm/array.sbatch; do
    [ -s "$p/$f" ] || fail "$f not installed"
done
lua=$(find "$p/share/tlsweep/modulefiles/tlsweep" -name '*.lua')
[ -n "$lua" ] || fail "no Lmod module installed"
grep -q "^local prefix = \"$p\"$" "$lua" || fail "the module does not point at the prefix: $(grep prefix "$lua")"
if grep -q "@[A-Z_]*@" "$lua"; then
    fail "unconfigured @VAR@ left in $lua"
fi
echo "ok: installed into $p"
