# Session 16, first call: an H200 runs calls/s15b.sh (the issues' H200 figures); an H100 runs calls/s16c.sh.
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
if grep -q H200 $OUT/gpu.txt; then bash calls/s15b.sh; else bash calls/s16c.sh; fi
