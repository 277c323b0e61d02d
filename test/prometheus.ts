/** Test helper: a strict parser of the Prometheus text exposition format (0.0.4). */

export interface Sample {
  readonly labels: Record<string, string>;
  readonly value: number;
  /** Set when the sample's name extends its family's: `_bucket`, `_sum`, `_count` of a histogram. */
  readonly suffix?: string;
}

export interface Family {
  readonly type: string;
  readonly samples: Sample[];
}

export type Families = Map<string, Family>;

const LABEL = String.raw`[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"`;
/** A label set: `a="x",b="y"`, a trailing comma allowed, or nothing. */
const LABELS = new RegExp(`^(?:${LABEL}(?:,${LABEL})*,?)?$`);

/**
 * Every line must be empty, a comment, a HELP/TYPE line or a sample of a family declared by an
 * earlier TYPE line; anything else throws with its line number. Samples `x_bucket`, `x_sum`,
 * `x_count`, `x_total` and `x_created` belong to family `x` unless a family of their own name exists.
 */
export function parsePrometheus(text: string): Families {
  const families: Families = new Map();
  const family = (name: string): { f: Family; suffix: string } | undefined => {
    const own = families.get(name);
    if (own !== undefined) return { f: own, suffix: '' };
    const base = /^(.*)(_bucket|_sum|_count|_total|_created)$/.exec(name);
    const f = base === null ? undefined : families.get(base[1] as string);
    return f === undefined ? undefined : { f, suffix: (base as RegExpExecArray)[2] as string };
  };
  for (const [n, line] of text.split('\n').entries()) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(meta[3] ?? '')) throw new Error(`line ${n + 1}: bad TYPE ${meta[3]}`);
        if (families.has(meta[2] as string)) throw new Error(`line ${n + 1}: second TYPE for ${meta[2]}`);
        families.set(meta[2] as string, { type: meta[3] as string, samples: [] });
      }
      continue;
    }
    if (line.startsWith('#')) continue;
    // prom-client writes NaN as `Nan`; Prometheus reads values with Go's ParseFloat, which ignores case.
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+-]+|NaN|Nan|\+Inf|-Inf)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`line ${n + 1} is not a sample: ${line}`);
    if (Number.isNaN(Number(m[4])) && !/^Na[Nn]$/.test(m[4] as string)) throw new Error(`line ${n + 1}: bad value ${m[4]}`);
    if (m[3] !== undefined && !LABELS.test(m[3])) throw new Error(`line ${n + 1}: bad labels {${m[3]}}`);
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    const found = family(m[1] as string);
    if (found === undefined) throw new Error(`line ${n + 1}: sample ${m[1]} has no TYPE`);
    found.f.samples.push(found.suffix === '' ? { labels, value: Number(m[4]) } : { labels, value: Number(m[4]), suffix: found.suffix });
  }
  return families;
}

/**
 * The value of the one sample of family `name` whose labels include `labels` and whose suffix is
 * `suffix` (none: the plain sample); undefined when there is none, and an error when several match.
 */
export function sampleValue(families: Families, name: string, labels: Record<string, string> = {}, suffix?: string): number | undefined {
  const found = (families.get(name)?.samples ?? []).filter((s) => s.suffix === suffix && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name}${suffix ?? ''} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}
