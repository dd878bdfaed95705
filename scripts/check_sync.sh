#!/usr/bin/env bash
# Fails if nbdev_export or nbdev_clean would change any file in the work tree:
# the generated package must match the notebooks, and the notebooks must be clean.
# Compares the state before and after, so local uncommitted edits are fine as
# long as they are themselves in sync.
set -euo pipefail
snap() { { git status --porcelain --untracked-files=all; git diff; git ls-files -o --exclude-standard -z | xargs -0 -r cat; } | sha256sum; }
before=$(snap)
nbdev_export
python -c 'from descgen.metrics import sync_metric_modules; sync_metric_modules()'
nbdev_clean
after=$(snap)
if [ "$before" != "$after" ]; then
  echo "FAIL: nbdev_export/nbdev_clean changed files. Run 'make export', review and commit:" >&2
  git status --short >&2
  exit 1
fi
echo "nbdev_export and nbdev_clean leave the tree unchanged."
