#!/usr/bin/env bash
# Runs real programs with and without LD_PRELOAD=libmslab_preload.so and
# compares their output. Programs that are not installed are skipped (and
# named). Usage: run_under_preload.sh LIBRARY
set -uo pipefail
lib=$1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failures=0
ran=0

# compare NAME COMMAND...: the command's stdout+status with and without the preload.
compare() {
  local name=$1
  shift
  local plain preloaded
  plain=$("$@" 2>&1; echo "status=$?")
  preloaded=$(LD_PRELOAD=$lib MSLAB_VERBOSE=0 "$@" 2>&1; echo "status=$?")
  ran=$((ran + 1))
  if [[ "$plain" != "$preloaded" ]]; then
    echo "MISMATCH $name"
    diff <(echo "$plain") <(echo "$preloaded") | head -20
    failures=$((failures + 1))
  else
    echo "same     $name"
  fi
}

have() { command -v "$1" > /dev/null 2>&1; }

py=/usr/bin/python3
[[ -x $py ]] || py=$(command -v python3 || true)
if [[ -n "$py" ]]; then
  compare python3 "$py" -c '
import json, collections, re, hashlib, threading
d = {str(i): [i] * (i % 17) for i in range(20000)}
s = json.dumps(d)
c = collections.Counter(re.findall(r"\d+", s))
out = []
def work(k):
    out.append(hashlib.sha256(("x" * k).encode()).hexdigest())
ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print(len(s), c.most_common(3), sorted(out)[0])
'
else
  echo "skip     python3 (not installed)"
fi

if have git; then
  repo=$scratch/repo
  mkdir -p "$repo"
  export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t
  export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
  git -C "$repo" init -q -b main && seq 1 5000 > "$repo/f" && git -C "$repo" add f &&
    git -C "$repo" commit -q -m one
  compare "git --version" git --version
  compare "git log" git -C "$repo" log --stat
  compare "git fsck+gc" sh -c "git -C '$repo' fsck --no-progress 2>&1; git -C '$repo' rev-parse HEAD"
else
  echo "skip     git (not installed)"
fi

if have sqlite3; then
  compare sqlite3 sqlite3 :memory: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<50000)
     SELECT count(*), sum(x), group_concat(x % 7, '') LIKE '%123%' FROM c;
     CREATE TABLE t(a, b); INSERT INTO t SELECT value, hex(randomblob(0)) || value FROM generate_series(1, 20000);
     CREATE INDEX i ON t(b); SELECT count(DISTINCT b), max(a) FROM t;"
else
  echo "skip     sqlite3 (not installed)"
fi

if have cmake; then
  compare "cmake --version" cmake --version
  compare "cmake -E" cmake -E echo mslab
else
  echo "skip     cmake (not installed)"
fi

echo "$ran programs compared, $failures mismatches"
[[ $failures -eq 0 && $ran -gt 0 ]]
