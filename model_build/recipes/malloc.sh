# Sourced by the recipes. TensorFlow's CPU kernels allocate and free large buffers every
# step; with glibc's malloc each one is a fresh mmap whose pages fault in again. On a 2-core
# AMD EPYC that was 275 000 page faults a second, 40 % system time and 2.4 s per training
# step; jemalloc that keeps its freed pages (decay off) made it 30 faults a second and
# 1.07 s per step (docs/model.md, "Training"). Debian: apt-get install libjemalloc2.
JEMALLOC=$(ldconfig -p 2>/dev/null | awk '/libjemalloc\.so\.2 /{print $NF; exit}')
if [ -n "$JEMALLOC" ]; then
  export LD_PRELOAD="$JEMALLOC${LD_PRELOAD:+:$LD_PRELOAD}"
  export MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1"
else
  echo "libjemalloc2 not found: training runs, but may be 2x slower (model_build/recipes/malloc.sh)" >&2
fi
