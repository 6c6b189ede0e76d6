// The similarity matrix as an SVG heatmap: one coloured cell per pair, the value printed in it.
// Each cell carries data-i/data-j/data-cos so tools (and the browser test) can read exact values.
import { heatColor, textColor } from "./similarity.js";

const CELL = 56;
const LABEL = 28;

export function Heatmap(props: { matrix: number[][]; labels: string[] }) {
  const n = props.matrix.length;
  const size = LABEL + n * CELL;
  return (
    <svg
      className="heatmap"
      role="img"
      aria-label={`Cosine similarity of ${n} texts`}
      width={size}
      height={size}
      viewBox={`0 0 ${size} ${size}`}
    >
      {props.labels.map((label, i) => (
        <g key={`label-${i}`}>
          <text x={LABEL + i * CELL + CELL / 2} y={LABEL - 8} textAnchor="middle">
            <title>{label}</title>
            {i + 1}
          </text>
          <text x={LABEL - 8} y={LABEL + i * CELL + CELL / 2 + 5} textAnchor="end">
            <title>{label}</title>
            {i + 1}
          </text>
        </g>
      ))}
      {props.matrix.map((row, i) =>
        row.map((cos, j) => (
          <g key={`${i}-${j}`} className="cell" data-i={i} data-j={j} data-cos={cos.toFixed(6)}>
            <rect
              x={LABEL + j * CELL}
              y={LABEL + i * CELL}
              width={CELL - 2}
              height={CELL - 2}
              rx={4}
              fill={heatColor(cos)}
            >
              <title>{`cos(${i + 1}, ${j + 1}) = ${cos.toFixed(4)}`}</title>
            </rect>
            <text
              x={LABEL + j * CELL + (CELL - 2) / 2}
              y={LABEL + i * CELL + (CELL - 2) / 2 + 5}
              textAnchor="middle"
              fill={textColor(cos)}
            >
              {cos.toFixed(2)}
            </text>
          </g>
        )),
      )}
    </svg>
  );
}
