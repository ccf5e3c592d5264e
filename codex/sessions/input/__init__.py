"""When a program waits for input: the kernel's view (detector) and when to look (watcher)."""
