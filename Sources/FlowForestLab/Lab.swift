// Network-namespace lab used by lab tests and `flowforest bench`.
