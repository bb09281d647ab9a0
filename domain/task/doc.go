// Package task is the task aggregate (one stream "task-<id>" per task: its
// files and lifecycle) and the per-user quota aggregate (one stream
// "quota-<owner>"), with the file-access events appended to the
// requester's "access-<user>" stream.
//
// Lifecycle: queued → processing → completed | failed; failed → queued
// (retried, while attempts remain); queued → cancelled; any live state
// except processing → expired; any live state → deleted.
//
// The package is pure: time is passed in, nothing here reads a store.
package task
