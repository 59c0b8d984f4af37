# Source at the end of a device script: one tarball of every run directory and log under $OUT.
cd "$WORK" && tar czf "$OUT/results.tar.gz" --exclude='*.parquet.tmp' runs logs 2>/dev/null; ls -la "$OUT"
