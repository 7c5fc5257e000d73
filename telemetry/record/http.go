package record

import (
	"net/http"
	"time"

	"lifeline/internal/durable"
	"lifeline/telemetry/hl7"
)

// Handler serves the record for the handover, for the lead to mount under
// /api/v1/record/:
//
//	GET ecg.dcm — the ECG as a DICOM General ECG waveform object (application/dicom)
//	GET oru.hl7 — everything as HL7 v2 ORU messages, each MLLP-framed, so the file can
//	              be replayed to any MLLP receiver (application/hl7-v2)
//
// opt supplies the patient and institution for the DICOM object; the recorder should be
// flushed first (Flush) so the last second is included.
func Handler(store *durable.Store, opt func() ECGOptions, flush func() error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ecg.dcm", func(w http.ResponseWriter, r *http.Request) {
		if flush != nil {
			flush()
		}
		msgs, err := Load(store)
		if err != nil {
			http.Error(w, "reading the record: "+err.Error(), http.StatusInternalServerError)
			return
		}
		var o ECGOptions
		if opt != nil {
			o = opt()
		}
		data, _, err := ExportECG(msgs, o, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/dicom")
		w.Header().Set("Content-Disposition", `attachment; filename="ecg.dcm"`)
		w.Write(data)
	})
	mux.HandleFunc("GET /oru.hl7", func(w http.ResponseWriter, r *http.Request) {
		if flush != nil {
			flush()
		}
		msgs, err := Load(store)
		if err != nil {
			http.Error(w, "reading the record: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/hl7-v2")
		w.Header().Set("Content-Disposition", `attachment; filename="record.hl7"`)
		for _, m := range ExportHL7(msgs, "", time.Now()) {
			w.Write(hl7.Frame(nil, m))
		}
	})
	return mux
}
