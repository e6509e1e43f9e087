#!/usr/bin/env bash
# The git real-program test: init, several commits (adds, edits, a rename,
# a delete, a branch and a merge), then log -p, diff, show and a gc.  Names
# and dates are fixed, so the output is the same on every run.  Runs in the
# current (empty) directory.
set -euo pipefail
command -v git >/dev/null 2>&1 || { echo "SKIP: git is not installed (scripts/deps.sh test installs it when run as root)"; exit 77; }
export GIT_AUTHOR_NAME="Carve Tester" GIT_AUTHOR_EMAIL="tester@example.com"
export GIT_COMMITTER_NAME="Carve Tester" GIT_COMMITTER_EMAIL="tester@example.com"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_PAGER=cat PAGER=cat
t=1700000000
commit() { # commit MESSAGE
    t=$((t + 3600))
    GIT_AUTHOR_DATE="@$t +0000" GIT_COMMITTER_DATE="@$t +0000" git commit -q -m "$1"
}
git init -q -b main repo
cd repo
for i in $(seq 1 40); do
    seq 1 "$((i * 20))" | sed "s/^/line $i: /" >"file$i.txt"
done
git add .
commit "initial: forty files"
for round in 1 2 3 4 5; do
    for i in $(seq "$round" 5 40); do
        sed -i "s/^line $i: \\([0-9]*5\\)\$/line $i: \\1 edited in round $round/" "file$i.txt"
    done
    printf 'round %d\n' "$round" >>NOTES
    git add -A
    commit "round $round: edit lines ending in 5"
done
git mv file7.txt renamed7.txt
git rm -q file8.txt
commit "rename 7, delete 8"
git checkout -q -b topic
seq 1 500 | awk '{ print "topic " $1 * 3 }' >topic.txt
git add topic.txt
commit "topic work"
git checkout -q main
echo "main after branch" >>NOTES
git add NOTES
commit "main moves on"
t=$((t + 3600))
GIT_AUTHOR_DATE="@$t +0000" GIT_COMMITTER_DATE="@$t +0000" git merge -q --no-ff -m "merge topic" topic
git log -p --stat --format=fuller
git log --graph --oneline --all
git diff HEAD~3 HEAD --stat
git show HEAD~1:NOTES
git gc -q
git count-objects -v | grep -v -e size -e prune
git fsck --no-progress
git rev-parse HEAD
