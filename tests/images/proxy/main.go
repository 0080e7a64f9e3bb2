// A traefik-style proxy for the tests, as the Swarm tutorials run one: pinned to a manager with
// the Docker socket mounted, it asks the Engine API which services carry the label proxy.port and
// forwards /<service>/<path> to http://<service>:<port>/<path> over their shared network. The
// routing table is read on every request, so a service labelled later is reached at once;
// /_routes prints it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sort"
	"strings"
)

const label = "proxy.port"

func main() {
	socket := os.Getenv("DOCKER_SOCKET")
	if socket == "" {
		socket = "/var/run/docker.sock"
	}
	engine := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		routes, err := routes(engine)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if r.URL.Path == "/_routes" {
			names := make([]string, 0, len(routes))
			for name := range routes {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				fmt.Fprintf(w, "%s %s\n", name, routes[name])
			}
			return
		}
		service, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		port, ok := routes[service]
		if !ok {
			http.Error(w, "no service "+service+" with label "+label, http.StatusNotFound)
			return
		}
		target := &url.URL{Scheme: "http", Host: net.JoinHostPort(service, port)}
		r.URL.Path = "/" + rest
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	})
	log.Fatal(http.ListenAndServe(":80", nil))
}

// The services labelled proxy.port, by name: the port each is reached on.
func routes(engine *http.Client) (map[string]string, error) {
	filter := url.QueryEscape(fmt.Sprintf(`{"label":["%s"]}`, label))
	// No API version in the path: the Engine answers in its own.
	resp, err := engine.Get("http://engine/services?filters=" + filter)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var services []struct {
		Spec struct {
			Name   string
			Labels map[string]string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&services); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range services {
		out[s.Spec.Name] = s.Spec.Labels[label]
	}
	return out, nil
}
