package readapi

// ExportFlushEvery lets the external tests size an export past its first
// flush.
const ExportFlushEvery = exportFlushEvery
