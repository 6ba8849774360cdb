import parsePrometheusTextFormat from "parse-prometheus-text-format";

/** Scrapes /metrics and parses it with a Prometheus text-format parser. */
export async function scrape(baseUrl: string): Promise<ReturnType<typeof parsePrometheusTextFormat>> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parsePrometheusTextFormat(await res.text());
}

/** The value of one sample of a family, found by its labels. */
export function sample(families: ReturnType<typeof parsePrometheusTextFormat>, name: string, labels: Record<string, string>): number | undefined {
  const family = families.find((f) => f.name === name);
  const found = family?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return found?.value !== undefined ? Number(found.value) : found?.count !== undefined ? Number(found.count) : undefined;
}
