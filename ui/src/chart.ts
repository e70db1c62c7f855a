/**
 * A streaming line chart over a `SeriesTable`: built once per set of
 * series, then only `setData` (uPlot updates in place, no re-render of the
 * page). Series names are server text; uPlot renders legend labels as text.
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

import type { SeriesTable } from "./store";

const COLORS = ["#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#ec4899"];

const CLOCK = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

/** A tick's time (seconds since the epoch) as local HH:MM:SS. */
export function clock(seconds: number): string {
  return CLOCK.format(new Date(seconds * 1000));
}

export class LiveChart {
  private plot: uPlot | null = null;
  private shownNames = "";
  private width = 0;

  constructor(
    private readonly host: HTMLElement,
    private readonly height: number,
    private readonly yLabel: string,
    private readonly yRange?: [number, number],
  ) {}

  /** Draws `table`; rebuilds only when its series changed or the size did. */
  update(table: SeriesTable): void {
    // Until two times are known uPlot would span years on the x axis.
    if (table.xs.length < 2) return;
    const width = Math.max(200, this.host.clientWidth);
    const names = table.names.join("\u0000");
    if (!this.plot || names !== this.shownNames || Math.abs(width - this.width) > 4) {
      this.plot?.destroy();
      this.shownNames = names;
      this.width = width;
      const range = this.yRange;
      this.plot = new uPlot(
        {
          width,
          height: this.height,
          legend: { show: true, live: false },
          cursor: { show: false },
          scales: range ? { y: { range: () => range } } : {},
          axes: [
            {
              stroke: "#8a97ab",
              grid: { stroke: "rgba(128,128,128,0.15)" },
              // Wall-clock seconds, never uPlot's sub-second ":34.500" ticks.
              values: (_u: uPlot, ticks: number[]) => ticks.map(clock),
              incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600],
              space: 90,
            },
            { stroke: "#8a97ab", grid: { stroke: "rgba(128,128,128,0.15)" }, label: this.yLabel, size: 60 },
          ],
          series: [
            {},
            ...table.names.map((label, i) => ({
              label,
              stroke: COLORS[i % COLORS.length],
              width: 2,
              spanGaps: true,
            })),
          ],
        },
        table.data() as uPlot.AlignedData,
        this.host,
      );
      return;
    }
    this.plot.setData(table.data() as uPlot.AlignedData);
  }
}
