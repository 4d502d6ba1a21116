#!/usr/bin/env bash
# The README's "Your own zoo" steps, timed: seconds per step on this machine.
#
# Offline and honest about it: the three checkpoints are built with random weights
# (--no-pretrained; the same architectures, so the same compute as the pre-trained ones) and the
# data is `python -m tpred.extract.demo` (digit PNG folders, 30 train / 15 test images per class,
# 3 classes each), resized to --image-size 64.
#
#     PYTHONPATH=$PWD bash bench/bench_own_zoo.sh [WORKDIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/own-zoo-XXXXXX)}
mkdir -p "$work" && cd "$work"
export PYTHONPATH=${PYTHONPATH:-$repo}
run=(--no-pretrained --image-size 64 --device cpu --no-progress)
metrics=(--metrics logme,leep,hscore --no-progress)

step() {  # step NAME command...: run, print its seconds
  local name=$1; shift
  local start; start=$(date +%s.%N)
  "$@" > "$name.log" 2>&1 || { echo "$name failed (exit $?), see $work/$name.log"; exit 1; }
  printf '%-36s %6.1f s\n' "$name" "$(echo "$(date +%s.%N) - $start" | bc)"
}

python -m tpred.extract.demo --out demo/ > /dev/null
python - <<'EOF'  # "your own checkpoint": a TorchScript file of a network with a 10-class head
import warnings
import tpred  # noqa: F401  (tpred's torchvision import hook, see tpred/_torchvision.py)
import torch, torchvision
warnings.simplefilter("ignore", DeprecationWarning)
torch.manual_seed(0)
torch.jit.save(torch.jit.script(torchvision.models.resnet18(num_classes=10).eval()), "my_net.pt")
EOF
printf 'timm:resnet18\ntorchvision:mobilenet_v3_small\ntorch:my_net.pt\n' > models.txt

echo "steps of README 'Your own zoo' in $work (random weights, images 64x64)"
step "1 tpred.extract (3 x 3 pairs)" python -m tpred.extract --models-file models.txt \
    --data demo/digits-zero-one-two --data demo/digits-three-four-five \
    --data demo/digits-six-seven-eight --out zoo/ "${run[@]}"
step "2 tpred.score" python -m tpred.score --features zoo/ --out zoo/scores.csv "${metrics[@]}"
step "3 tpred.finetune (linear probe)" python -m tpred.finetune --features zoo/ \
    --out zoo/records.csv --no-progress
step "4 tpred.train" python -m tpred.train --config "$repo/configs/own-zoo.yaml" \
    --set "data.root=$work/zoo" --set "output_dir=$work/runs" --no-plots --quiet
step "5a tpred.extract (new dataset)" python -m tpred.extract --models-file models.txt \
    --data demo/digits-one-seven-nine --out new/ "${run[@]}"
step "5b tpred.score (new dataset)" python -m tpred.score --features new/ \
    --out new/scores.csv "${metrics[@]}"
step "5c tpred.predict --top-k 3" python -m tpred.predict --run runs/own-zoo \
    --datasets new/datasets.csv --scores new/scores.csv --top-k 3 --out predictions.csv
step "6 tpred.recommend --budget 2" python -m tpred.recommend --run runs/own-zoo \
    --data demo/digits-one-seven-nine --budget 2 --top-k 3 --out shortlist/
cat predictions.ranking.csv
echo "--- tpred.recommend (shortlist/ranking.csv)"; cat shortlist/ranking.csv
