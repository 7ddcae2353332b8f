#!/usr/bin/env bash
# The GPU check of issue 22, as one prepared run (the device tool lends a GPU for minutes):
#   1. bench_scale.py per tracker at B = 1/8/32/128 (single-stream FPS is its plain
#      track_step column at B = 1). Phase 1 compiles every tracker in parallel (the compile
#      times are read there) and fills a persistent cache; phase 2 times the trackers one
#      after another on that cache, so no other process shares the GPU while a step is timed.
#   2. demo.py on the GPU (its AUC beside the CPU's).
#   3. DAT's AUC on the six OTB sequences, one eval per variant (--parallel 6), started with
#      phase 1, paused (SIGSTOP) during phase 2 and resumed after it until TOTAL seconds.
# Stage the inputs in an ignored folder and carry it (the device copies only the checkout):
#   mkdir -p .gpu && cp -r ../shared/data/otb .gpu/otb && \
#     cp ../shared/weights/mobilenet_v2_imagenet_features.pt .gpu/
#   run: bash experiments/gpu_check.sh 2>&1 | tee $OUT/log.txt   (carry .gpu; about 9 min)
# Everything lands in $OUT/gpu_results.tgz. Settings by environment: T (trackers), BS (batch
# sizes), P1/P2 (phase time limits, s), STEPS, EVALS (DAT variants), SEQS, TOTAL, DEV (gpu|cpu).
set -u
STAGE=${STAGE:-$PWD/.gpu}
export PYTHONPATH=. PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false \
  JAXTRACK_MOBILENET_V2=$STAGE/mobilenet_v2_imagenet_features.pt
R=$(mktemp -d); C=$R/xla_cache
P1=${P1:-230}; P2=${P2:-45}; STEPS=${STEPS:-10}; BS=${BS:-"1 8 32 128"}
T=${T:-"siamfc:mobilenet_v2 siamfc:alexnet tadt atom gradnet:mobilenet_v2 dat"}
DEV=${DEV:-gpu}; EVALS=${EVALS:-"default lam0 guided8"}
{ nvidia-smi -L; python3 -c "import jax,flax,optax,cv2,numpy;print('jax',jax.__version__,'flax',flax.__version__,'optax',optax.__version__,'cv2',cv2.__version__,'numpy',numpy.__version__);print(jax.devices())"; } > $R/env.txt 2>&1
cat $R/env.txt
t0=$(date +%s)
for t in $T; do n=${t//:/_}
  timeout $P1 python3 experiments/bench_scale.py --device $DEV --trackers $t --batch-sizes $BS --steps 2 \
    --cache-dir $C --budget-s $((P1-30)) --out $R/p1_$n.json > $R/p1_$n.log 2>&1 &
done
( [ $DEV = gpu ] && export JAX_PLATFORMS=cuda || export JAX_PLATFORMS=cpu
  timeout $P1 python3 experiments/demo.py --out $R/demo_out > $R/demo.log 2>&1 ) &
EV=""
for v in $EVALS; do     # own process groups, so that they can be paused as a whole
  setsid python3 experiments/run_ope.py --device $DEV --tracker dat --variant $v --dataset otb \
    --root $STAGE/otb --results $R/dat_otb --parallel 6 --no-progress --no-cache \
    ${SEQS:+--sequences $SEQS} > $R/eval_$v.log 2>&1 &
  EV="$EV $!"
done
while pgrep -f bench_scale.py >/dev/null || pgrep -f demo.py >/dev/null; do sleep 2; done
for p in $EV; do kill -STOP -- -$p 2>/dev/null; done
echo "phase 1 done in $(( $(date +%s) - t0 )) s"; tail -n 3 $R/demo.log
for t in $T; do n=${t//:/_}; t1=$(date +%s)
  p2=$P2; [ $t = dat ] && p2=$((2 * P2))
  bs=$(python3 -c "import json,sys; print(' '.join(str(r['B']) for r in json.load(open(sys.argv[1]))['rows'] if 'fps' in r))" $R/p1_$n.json 2>/dev/null)
  [ -z "$bs" ] && { echo "phase 2 $t: nothing compiled in phase 1"; continue; }
  timeout $p2 python3 experiments/bench_scale.py --device $DEV --trackers $t --batch-sizes $bs --steps $STEPS \
    --cache-dir $C --out $R/p2_$n.json > $R/p2_$n.log 2>&1
  echo "phase 2 $t rc=$? $(( $(date +%s) - t1 )) s"; grep '^| [a-z]' $R/p2_$n.log
done
for p in $EV; do kill -CONT -- -$p 2>/dev/null; done
left=$(( ${TOTAL:-540} - ($(date +%s) - t0) )); echo "DAT evals resumed, $left s left"
while [ $left -gt 0 ] && pgrep -f run_ope.py >/dev/null; do sleep 2; left=$((left - 2)); done
pkill -f run_ope.py; sleep 1
for v in $EVALS; do echo "== eval $v"; grep -i -E "auc|error|Traceback" $R/eval_$v.log | tail -n 8; done
for t in $T; do n=${t//:/_}; echo "== p1 $t"; grep '^| [a-z]' $R/p1_$n.log; grep -i error $R/p1_$n.log | tail -n 2; done
rm -rf $C; tar czf ${OUT:-.}/gpu_results.tgz -C $R .
echo "total $(( $(date +%s) - t0 )) s"
