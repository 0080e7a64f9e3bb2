// kstatus: reads a JSON list of Kubernetes objects on stdin and prints, for each, the status
// kstatus computes (sigs.k8s.io/cli-utils/pkg/kstatus/status, what Flux and kpt use), as a
// JSON list of {kind, name, status, message}.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	// Each object through apimachinery's own decoding, so numbers are int64 as kstatus expects.
	var items []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&items); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := []result{}
	for _, item := range items {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(item); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		r := result{Kind: u.GetKind(), Name: u.GetName()}
		res, err := status.Compute(u)
		if err != nil {
			r.Status, r.Message = "Error", err.Error()
		} else {
			r.Status, r.Message = string(res.Status), res.Message
		}
		out = append(out, r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
