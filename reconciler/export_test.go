package reconciler

// UnfitValue exposes unfitValue to the external tests.
var UnfitValue = unfitValue
