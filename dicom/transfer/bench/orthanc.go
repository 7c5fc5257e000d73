package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"lifeline/dicom/pacs/pacstest"
	"lifeline/internal/linkemu"
)

// Orthanc's ports inside the hub namespace. Its REST API answers only on the
// namespace's loopback; its C-STORE SCP on every address, so storescu in the box
// namespace reaches it across the link.
const (
	orthancHTTP  = 8042
	orthancDICOM = 4242
)

// orthanc is a real Orthanc (with the DICOMweb plugin) running in the hub namespace
// with its own throw-away storage.
type orthanc struct {
	p    *proc
	http *http.Client
	base string
}

func startOrthanc(ctx context.Context, link *linkemu.Link, bin, dir string) (*orthanc, error) {
	path, err := pacstest.WriteOrthancConfig(dir, pacstest.Ports{HTTP: orthancHTTP, DICOM: orthancDICOM})
	if err != nil {
		return nil, err
	}
	p, err := startProc("orthanc", dir, link.Command(linkemu.Hub, bin, path))
	if err != nil {
		return nil, err
	}
	o := &orthanc{p: p, http: nsClient(link, linkemu.Hub), base: fmt.Sprintf("http://127.0.0.1:%d", orthancHTTP)}
	err = waitUntil(ctx, "Orthanc answering", 30*time.Second, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("orthanc exited: %s", p.tail())
		}
		_, err := o.count(ctx)
		return err == nil, err
	})
	if err != nil {
		p.kill()
		return nil, err
	}
	return o, nil
}

func (o *orthanc) stop() { o.p.stop(10 * time.Second) }

func (o *orthanc) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := o.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("orthanc: GET %s: %s", path, resp.Status)
	}
	return body, nil
}

// count returns how many instances Orthanc holds.
func (o *orthanc) count(ctx context.Context) (int, error) {
	body, err := o.get(ctx, "/statistics")
	if err != nil {
		return 0, err
	}
	var st struct{ CountInstances int }
	if err := json.Unmarshal(body, &st); err != nil {
		return 0, fmt.Errorf("orthanc: /statistics: %w", err)
	}
	return st.CountInstances, nil
}

// instances maps the SOP Instance UIDs Orthanc holds to its own instance IDs.
func (o *orthanc) instances(ctx context.Context) (map[string]string, error) {
	body, err := o.get(ctx, "/instances?expand")
	if err != nil {
		return nil, err
	}
	var list []struct {
		ID            string
		MainDicomTags map[string]string
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("orthanc: /instances: %w", err)
	}
	out := make(map[string]string, len(list))
	for _, it := range list {
		out[it.MainDicomTags["SOPInstanceUID"]] = it.ID
	}
	return out, nil
}

// verify checks that Orthanc holds exactly the study's instances, each with the
// data set the modality sent (Orthanc writes its own File Meta group, so the data
// set after it is what must match).
func (o *orthanc) verify(ctx context.Context, s *study) error {
	have, err := o.instances(ctx)
	if err != nil {
		return err
	}
	if len(have) != len(s.MD5) {
		return fmt.Errorf("orthanc holds %d instances, the study has %d", len(have), len(s.MD5))
	}
	for sop, want := range s.MD5 {
		id, ok := have[sop]
		if !ok {
			return fmt.Errorf("instance %s is not in Orthanc", sop)
		}
		file, err := o.get(ctx, "/instances/"+id+"/file")
		if err != nil {
			return err
		}
		got, err := pacstest.DatasetMD5(file)
		if err != nil {
			return fmt.Errorf("instance %s in Orthanc: %w", sop, err)
		}
		if got != want {
			return fmt.Errorf("instance %s: data set MD5 %s in Orthanc, %s sent", sop, got, want)
		}
	}
	return nil
}
