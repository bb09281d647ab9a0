package main

import "flag"

var update = flag.Bool("update", false, "rewrite generated sections of README.md")
