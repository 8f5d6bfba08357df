# Plots of a bench/run.sh run (Debian: apt-get install gnuplot-nox):
#   gnuplot -e "dir='/tmp/sb-bench.XXXX'; out='bench/results'" bench/plot.gp
# dir holds latency_by_load.dat and memory_by_conns.dat (written by bench/report -plotdata).
# With patched=1, dir also holds latency_by_load_patched.dat and memory_by_conns_patched.dat
# (bench/report -plotdata of a SERVERS=switchboard SB_BIN=... or SB_ENV=... run), drawn as a third
# server named label3.
if (!exists("dir")) dir = "."
if (!exists("patched")) patched = 0
if (!exists("label3")) label3 = "Switchboard + patches" # the third server's name
if (!exists("out")) out = "."

set terminal pngcairo size 900,540 font "DejaVu Sans,11"
set grid
set key top left

set output out."/latency_by_load.png"
set title "Hand-off latency (answerer join → offer + 10 early candidates) by call rate"
set xlabel "call set-ups started per second (two instances, one Redis, 2 cores)"
set ylabel "hand-off latency (ms, log scale)"
set logscale y
set yrange [0.5:*]
f = dir."/latency_by_load.dat"
fp = dir."/latency_by_load_patched.dat"
if (patched) {
plot f using 1:2 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "Switchboard p50", \
     f using 1:3 with linespoints lw 2 pt 5 lc rgb "#1f77b4" dt 2 title "Switchboard p99", \
     fp using 1:2 with linespoints lw 2 pt 7 lc rgb "#9467bd" title label3." p50", \
     fp using 1:3 with linespoints lw 2 pt 5 lc rgb "#9467bd" dt 2 title label3." p99", \
     f using 1:4 with linespoints lw 2 pt 7 lc rgb "#d62728" title "Node socket.io p50", \
     f using 1:5 with linespoints lw 2 pt 5 lc rgb "#d62728" dt 2 title "Node socket.io p99", \
     1 with lines lw 1 lc rgb "#2ca02c" title "target p99 (1 ms)"
} else {
plot f using 1:2 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "Switchboard p50", \
     f using 1:3 with linespoints lw 2 pt 5 lc rgb "#1f77b4" dt 2 title "Switchboard p99", \
     f using 1:4 with linespoints lw 2 pt 7 lc rgb "#d62728" title "Node socket.io p50", \
     f using 1:5 with linespoints lw 2 pt 5 lc rgb "#d62728" dt 2 title "Node socket.io p99", \
     1 with lines lw 1 lc rgb "#2ca02c" title "target p99 (1 ms)"
}
unset logscale y
set yrange [*:*]

set output out."/memory_by_conns.png"
set title "Server memory by idle websocket connections (one instance, each joined a room)"
set xlabel "open connections"
set ylabel "MiB"
set key top left
m = dir."/memory_by_conns.dat"
mp = dir."/memory_by_conns_patched.dat"
if (patched) {
plot m index 0 using 1:2 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "Switchboard RSS", \
     m index 0 using 1:3 with linespoints lw 2 pt 6 lc rgb "#1f77b4" dt 2 title "Switchboard Go heap", \
     mp index 0 using 1:2 with linespoints lw 2 pt 7 lc rgb "#9467bd" title label3." RSS", \
     mp index 0 using 1:3 with linespoints lw 2 pt 6 lc rgb "#9467bd" dt 2 title label3." Go heap", \
     m index 1 using 1:2 with linespoints lw 2 pt 7 lc rgb "#d62728" title "Node RSS", \
     m index 1 using 1:3 with linespoints lw 2 pt 6 lc rgb "#d62728" dt 2 title "Node heap (V8 + external)", \
     (x * 10000 / 1048576.0) with lines lw 1 lc rgb "#2ca02c" title "target slope (10 KB per connection)"
} else {
plot m index 0 using 1:2 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "Switchboard RSS", \
     m index 0 using 1:3 with linespoints lw 2 pt 6 lc rgb "#1f77b4" dt 2 title "Switchboard Go heap", \
     m index 1 using 1:2 with linespoints lw 2 pt 7 lc rgb "#d62728" title "Node RSS", \
     m index 1 using 1:3 with linespoints lw 2 pt 6 lc rgb "#d62728" dt 2 title "Node heap (V8 + external)", \
     (x * 10000 / 1048576.0) with lines lw 1 lc rgb "#2ca02c" title "target slope (10 KB per connection)"
}
