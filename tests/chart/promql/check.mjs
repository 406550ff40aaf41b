// Reads JSON [expr, ...] on stdin; prints JSON [{expr, error}] for every expression that does not parse as PromQL.
import { parser } from "@prometheus-io/lezer-promql";
let input = "";
for await (const chunk of process.stdin) input += chunk;
const problems = [];
for (const expr of JSON.parse(input)) {
  const tree = parser.parse(expr);
  let error = null;
  tree.iterate({
    enter(node) {
      if (error === null && node.type.isError) error = `syntax error at ${node.from}: ${JSON.stringify(expr.slice(Math.max(0, node.from - 20), node.to + 20))}`;
    },
  });
  if (error !== null) problems.push({ expr, error });
}
process.stdout.write(JSON.stringify(problems));
