#!/usr/bin/env bash
# usage: publish-tree.sh TREE REPO BRANCH
# Commit the working tree TREE as it is now (tracked and untracked files, less what its .gitignore files exclude) to
# BRANCH of the bare repository REPO (created if missing) and make BRANCH REPO's default branch. TREE's own repository
# is not touched: the index, the objects and the refs used are REPO's. Prints "changed" when BRANCH moved.
set -euo pipefail
tree_dir=$1 repo=$2 branch=$3
[[ -f $repo/HEAD ]] || git init --quiet --bare "$repo"
export GIT_DIR=$repo GIT_WORK_TREE=$tree_dir GIT_INDEX_FILE=$repo/publish-tree.index
rm -f "$GIT_INDEX_FILE"
git add --all
tree=$(git write-tree)
rm -f "$GIT_INDEX_FILE"
if [[ $tree != "$(git rev-parse -q --verify "refs/heads/$branch^{tree}" || true)" ]]; then
  parent=$(git rev-parse -q --verify "refs/heads/$branch" || true)
  commit=$(git -c user.name=sitekit-molecule -c user.email=molecule@sitekit.invalid \
    commit-tree ${parent:+-p "$parent"} -m "The working tree of $tree_dir" "$tree")
  git update-ref "refs/heads/$branch" "$commit"
  echo changed
fi
git symbolic-ref HEAD "refs/heads/$branch"
