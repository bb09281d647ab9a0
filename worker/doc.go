// Package worker processes tasks: it claims queued tasks (a claim is an
// event appended at the task stream's expected revision, so two workers
// never hold one task), runs a Processor on their files while renewing the
// claim, and records the result or the failure. Beside it run the release
// loop (claims whose worker stopped heartbeating go back to the queue) and
// the retention loop (old tasks expire and their blobs are removed).
//
// The read model (projections/taskviews.Queue) only suggests which tasks to
// look at; every decision is re-checked by the commands on the task stream.
package worker
