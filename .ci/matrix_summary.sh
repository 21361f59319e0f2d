# Sourced by the matrix scripts: totals and a table of REPORT ("name|versions|summary" rows,
# summary being pytest's last line or an install/interpreter failure).
#   print_matrix_summary "FIRST COLUMN TITLE" "closing-line label"
print_matrix_summary() {
  local title="$1" label="$2" line summary p f k n a b c
  local passed=0 failed=0 skipped=0
  for line in "${REPORT[@]}"; do
    summary="${line##*|}"
    p=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+' || true)
    f=0
    for n in $(grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" | grep -oE '^[0-9]+' || true); do
      f=$((f + n))
    done
    k=$(grep -oE '[0-9]+ skipped' <<<"$summary" | grep -oE '[0-9]+' || true)
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${k:-0}))
    case "$summary" in *"install failed"*|*"not found"*) failed=$((failed + 1));; esac
  done
  echo
  echo "| $title | versions | result |"
  echo "|---|---|---|"
  for line in "${REPORT[@]}"; do
    IFS='|' read -r a b c <<<"$line"
    echo "| $a | $b | $c |"
  done
  echo
  echo "$label: $passed passed, $failed failed, $skipped skipped"
}
