package remote_test

const envChildURL = "SPOOL_REMOTE_CHILD_URL"

func runChild() int { return 0 }
