# Shared by the shell tests that need the Fashion-MNIST package, most of
# them to run `tlsweep` on a tiny random backbone
# (cli/tiny_model.c) and a few Fashion-MNIST images. Source it; it defines:
#
#   need_fashion_mnist          fails (never skips) when Debian's dataset is missing
#   tiny_data TLSWEEP TINY DIR PER_CLASS
#                               DIR/tiny.tlm and DIR/fm/{train,test} at 32x32
#   tiny_sweep DIR NAME EPOCHS MODES LRS HEAD [EXTRA]
#                               prints a sweep over DIR's data: MODES, LRS and
#                               HEAD are YAML lists, EXTRA more top-level lines
#                               (out:, checkpoint_seconds:, ...)
#   fail MESSAGE                "FAIL: MESSAGE" on stderr, exit 1
#   rank_pid COMMAND RANKS      the pid of a process running COMMAND (pgrep -f)
#                               whose OMPI_COMM_WORLD_RANK matches the
#                               regex RANKS, e.g. '[12]'; nothing if none
#   board OUT                   OUT's leaderboard without timings: results.csv
#                               without its last column (seconds)
#   wait_until WHAT COMMAND...  runs COMMAND every 0.1 s until it succeeds;
#                               after a minute fails with "WHAT did not happen"

need_fashion_mnist() {
    _src=/usr/share/datasets/fashion-mnist
    if [ ! -e "$_src/train-labels-idx1-ubyte.gz" ] && [ ! -e "$_src/train-labels-idx1-ubyte" ]; then
        echo "$_src not installed (deploy/install-deps.sh installs dataset-fashion-mnist)" >&2
        exit 1
    fi
}

tiny_data() {
    need_fashion_mnist
    "$2" "$3/tiny.tlm" > /dev/null
    "$1" data fashion-mnist "$3/fm" --per-class "$4" --size 32 > /dev/null
}

tiny_sweep() {
    cat <<EOF
name: $2
data:
  train_dir: $1/fm/train
  test_dir: $1/fm/test
  validation_split: 0.25
  image_size: 32
model:
  head: $6
weights:
  mobilenet_v2: $1/tiny.tlm
grid:
  backbone: [mobilenet_v2]
  mode: $4
  learning_rate: $5
  optimizer: [adam]
  batch_size: [16]
epochs: $3
threads: 1
seed: 7
${7:-}
EOF
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

board() {
    sed 's/,[^,]*$//' "$1/results.csv" # all but the last column, seconds
}

rank_pid() {
    for _p in $(pgrep -f "$1" || true); do
        if tr '\0' '\n' < "/proc/$_p/environ" 2> /dev/null | grep -q "^OMPI_COMM_WORLD_RANK=$2\$"; then
            echo "$_p"
            return 0
        fi
    done
}

wait_until() {
    _what=$1
    shift
    _i=0
    until "$@" > /dev/null 2>&1; do
        _i=$((_i + 1))
        [ $_i -lt 600 ] || fail "$_what did not happen within a minute"
        sleep 0.1
    done
}
