"""The flare classifier stage (--mode=classify): training sets, one run, the experiment, folds."""
