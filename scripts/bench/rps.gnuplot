# Bar chart for scripts/bench.py (median over rounds, per scenario):
#   left bar  = requests/s ÷ baseline requests/s of the same round
#   right bar = baseline nginx CPU µs/req ÷ scenario nginx CPU µs/req (the ratio if nginx alone
#               were the bottleneck; steadier on a shared machine)
#   red line  = the target, where the issue sets one
# Called as: gnuplot -e "datafile='...'; outfile='...'" rps.gnuplot
# datafile columns: index "name" ratio rps target cpu_ratio
set terminal pngcairo size 1200,620 font "sans,10"
set output outfile
set title "ngx\\_http\\_session\\_module vs plain nginx in the same run (1 worker, wrk -t1, loopback)"
set ylabel "ratio to baseline"
set yrange [0:1.25]
set xrange [-0.6:*]
set grid ytics
set style fill solid 0.85 border -1
set boxwidth 0.32
set xtics rotate by -25 left noenhanced font "sans,9"
set key top right
set bmargin 8
plot datafile using ($1-0.17):3:xtic(sprintf("%s\n%.0f req/s", stringcolumn(2), $4)) \
        with boxes lc rgb "#4e79a7" title "req/s ratio", \
     '' using ($1+0.17):6 with boxes lc rgb "#a0cbe8" title "nginx CPU/request ratio", \
     '' using ($1-0.17):3:(sprintf("%.2f", $3)) with labels offset 0,0.7 font "sans,8" notitle, \
     '' using ($1+0.17):6:(sprintf("%.2f", $6)) with labels offset 0,0.7 font "sans,8" notitle, \
     '' using ($1-0.38):5:(0.76):(0) with vectors nohead lw 2 dt 2 lc rgb "#e15759" title "target"
